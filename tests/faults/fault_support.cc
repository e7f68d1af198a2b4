#include "tests/faults/fault_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/client_frame.h"
#include "tests/support/http_get.h"

namespace chat::testing {

namespace {

std::string FromEnv(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(fallback);
}

int PollFor(int fd, short events, absl::Time deadline) {
  while (true) {
    const int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    return p.revents;
  }
}

// "m123" in `frame` after `key` (e.g. "\"message\":\""): 123; -1 if none.
int64_t IdAfter(const std::string& frame, const std::string& key) {
  size_t at = frame.find(key);
  if (at == std::string::npos) return -1;
  at += key.size();
  if (at >= frame.size() || frame[at] != 'm') return -1;
  size_t end = frame.find('"', at);
  int64_t id = -1;
  if (end == std::string::npos || !absl::SimpleAtoi(frame.substr(at + 1, end - at - 1), &id)) {
    return -1;
  }
  return id;
}

std::string StringAfter(const std::string& frame, const std::string& key) {
  size_t at = frame.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  size_t end = frame.find('"', at);
  return end == std::string::npos ? "" : frame.substr(at, end - at);
}

}  // namespace

std::string EdgeBin() { return FromEnv("CHAT_FAULT_EDGE_BIN", EDGE_BIN); }
std::string GroupsvcBin() { return FromEnv("CHAT_FAULT_GROUPSVC_BIN", GROUPSVC_BIN); }
bool BinariesOverridden() {
  return EdgeBin() != std::string(EDGE_BIN) || GroupsvcBin() != std::string(GROUPSVC_BIN);
}

absl::Duration LoadPhase(absl::Duration short_default) {
  double seconds = 0;
  const char* v = std::getenv("CHAT_FAULT_SECONDS");
  if (v != nullptr && absl::SimpleAtod(v, &seconds) && seconds > 0) {
    return std::max(short_default, absl::Seconds(seconds));
  }
  return short_default;
}

absl::StatusOr<Server> StartServer(std::vector<std::string> argv, bool edge,
                                   std::vector<std::string> wrapper) {
  if (!edge && BinariesOverridden()) argv.push_back("--undefok=warmup,unsettled_window");
  if (edge) {
    argv.push_back("--metrics_listen=127.0.0.1:0");
    // An edge from before the flags of issue 9 ignores them.
    if (BinariesOverridden()) {
      argv.push_back(
          "--undefok=metrics_listen,header_timeout,frame_timeout,write_timeout,"
          "socket_send_buffer,max_connections,max_connections_per_ip,allowed_hosts");
    }
  }
  wrapper.insert(wrapper.end(), argv.begin(), argv.end());
  auto p = ChildProcess::Start(std::move(wrapper));
  if (!p.ok()) return p.status();
  Server s;
  s.process = *std::move(p);
  absl::StatusOr<int> port = s.process->WaitForField(" listening ", "port", absl::Seconds(30));
  if (!port.ok()) return port.status();
  s.port = *port;
  absl::StatusOr<int> metrics =
      s.process->WaitForField(" listening ", "metrics_port", absl::Milliseconds(100));
  s.metrics_port = metrics.ok() && *metrics > 0 ? *metrics : s.port;
  return s;
}

absl::StatusOr<Server> StartGroupsvc(int port, std::vector<std::string> flags) {
  std::vector<std::string> argv = {GroupsvcBin(), absl::StrCat("--listen=127.0.0.1:", port),
                                   "--metrics_listen=127.0.0.1:0", "--grace=1s"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return StartServer(std::move(argv), /*edge=*/false);
}

absl::StatusOr<Server> StartEdge(int groupsvc_port, const std::string& edge_id,
                                 std::vector<std::string> flags, std::vector<std::string> wrapper) {
  std::vector<std::string> argv = {EdgeBin(), "--listen=127.0.0.1:0"};
  if (groupsvc_port != 0) argv.push_back(absl::StrCat("--groupsvc=127.0.0.1:", groupsvc_port));
  if (!edge_id.empty()) argv.push_back(absl::StrCat("--edge_id=", edge_id));
  argv.insert(argv.end(), flags.begin(), flags.end());
  return StartServer(std::move(argv), /*edge=*/true, std::move(wrapper));
}

double Metric(int metrics_port, const std::string& line_prefix) {
  absl::StatusOr<HttpReply> r = HttpGet("127.0.0.1", metrics_port, "/metrics");
  if (!r.ok() || r->status != kHttpOk) return -1;
  size_t at = r->body.find("\n" + line_prefix + " ");
  if (at == std::string::npos) return 0;
  return std::stod(r->body.substr(at + line_prefix.size() + 2));
}

int ConnectTcp(int port, const std::string& source_ip, int rcvbuf, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (!source_ip.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, source_ip.c_str(), &local.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      close(fd);
      return -1;
    }
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    if (errno != EINPROGRESS || (PollFor(fd, POLLOUT, deadline) & POLLOUT) == 0) {
      close(fd);
      return -1;
    }
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      close(fd);
      return -1;
    }
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

std::string ReadSome(int fd, absl::Duration timeout, bool* eof) {
  *eof = false;
  if (PollFor(fd, POLLIN, absl::Now() + timeout) == 0) return "";
  char buffer[16384];
  ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
  if (n > 0) return std::string(buffer, n);
  if (n == 0 || (errno != EAGAIN && errno != EINTR)) *eof = true;
  return "";
}

int BoundHttpGet(const std::string& source_ip, int port, const std::string& path,
                 absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  int fd = ConnectTcp(port, source_ip, 0, timeout);
  if (fd < 0) return 0;
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1:", port,
                                           "\r\nConnection: close\r\n\r\n");
  int status = 0;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    std::string got;
    bool eof = false;
    while (got.find("\r\n") == std::string::npos && !eof && absl::Now() < deadline) {
      got += ReadSome(fd, deadline - absl::Now(), &eof);
    }
    if (got.rfind("HTTP/1.1 ", 0) == 0 && got.size() >= 12) {
      if (!absl::SimpleAtoi(got.substr(9, 3), &status)) status = 0;
    }
  }
  close(fd);
  return status;
}

// ---------------------------------------------------------------------- RawWs

absl::StatusOr<std::unique_ptr<RawWs>> RawWs::Connect(int port, const std::string& path,
                                                      const Options& options) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int fd = ConnectTcp(port, options.source_ip, options.rcvbuf, absl::Seconds(5));
  if (fd < 0) return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
  std::unique_ptr<RawWs> ws(new RawWs(fd));
  std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1:", port,
                                     "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                     "Sec-WebSocket-Version: 13\r\n");
  if (!options.origin.empty()) absl::StrAppend(&request, "Origin: ", options.origin, "\r\n");
  request += "\r\n";
  if (!ws->WriteAll(request)) return absl::UnavailableError("handshake: write failed");
  size_t end;
  while ((end = ws->in_.find("\r\n\r\n")) == std::string::npos) {
    bool eof = false;
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("handshake: no answer");
    ws->in_ += ReadSome(fd, deadline - absl::Now(), &eof);
    if (eof && ws->in_.find("\r\n\r\n") == std::string::npos) {
      return absl::UnavailableError(absl::StrCat("handshake: connection ended: ", ws->in_));
    }
  }
  int status = 0;
  if (ws->in_.size() >= 12) (void)absl::SimpleAtoi(ws->in_.substr(9, 3), &status);
  if (status != 101) {
    return absl::FailedPreconditionError(absl::StrCat("handshake refused: HTTP ", status));
  }
  ws->in_.erase(0, end + 4);
  return ws;
}

RawWs::~RawWs() { close(fd_); }

bool RawWs::WriteAll(const std::string& bytes) {
  absl::MutexLock lock(&write_mu_);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if ((PollFor(fd_, POLLOUT, deadline) & POLLOUT) == 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool RawWs::SendText(const std::string& text) { return WriteAll(ClientFrame(0x1, text)); }
bool RawWs::SendRaw(const std::string& bytes) { return WriteAll(bytes); }

std::optional<RawWs::Frame> RawWs::ParseOne() {
  while (true) {
    if (in_.size() < 2) return std::nullopt;
    const uint8_t b0 = in_[0], b1 = in_[1];
    const bool fin = b0 & 0x80, masked = b1 & 0x80;
    const int opcode = b0 & 0x0F;
    uint64_t length = b1 & 0x7F;
    size_t header = 2;
    if (length == 126) {
      if (in_.size() < 4) return std::nullopt;
      length = (uint8_t(in_[2]) << 8) | uint8_t(in_[3]);
      header = 4;
    } else if (length == 127) {
      if (in_.size() < 10) return std::nullopt;
      length = 0;
      for (int i = 0; i < 8; ++i) length = (length << 8) | uint8_t(in_[2 + i]);
      header = 10;
    }
    const size_t key_at = header;
    if (masked) header += 4;
    if (in_.size() < header + length) return std::nullopt;
    std::string payload = in_.substr(header, length);
    if (masked) {
      for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= in_[key_at + i % 4];
    }
    in_.erase(0, header + length);
    switch (opcode) {
      case 0x1:
      case 0x0:
        fragments_ += payload;
        if (!fin) continue;
        {
          Frame f{Frame::kText, std::move(fragments_), 0};
          fragments_.clear();
          return f;
        }
      case 0x8: {
        const int code =
            payload.size() >= 2 ? (uint8_t(payload[0]) << 8) | uint8_t(payload[1]) : 1005;
        if (!close_answered_) {
          close_answered_ = true;
          WriteAll(ClientFrame(0x8, payload.substr(0, 2)));
        }
        closed_ = code;
        return Frame{Frame::kClose, "", code};
      }
      case 0x9:
        WriteAll(ClientFrame(0xA, payload));
        continue;
      default:
        continue;  // Pong, or whatever else: not ours to judge here.
    }
  }
}

RawWs::Frame RawWs::Next(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (std::optional<Frame> f = ParseOne(); f.has_value()) return *f;
    if (closed_.has_value()) {
      return Frame{*closed_ == kCloseAbnormal ? Frame::kLost : Frame::kClose, "", *closed_};
    }
    bool eof = false;
    std::string got = ReadSome(fd_, std::max(absl::ZeroDuration(), deadline - absl::Now()), &eof);
    in_ += got;
    if (eof) {
      if (std::optional<Frame> f = ParseOne(); f.has_value()) return *f;
      closed_ = kCloseAbnormal;
      return Frame{Frame::kLost, "", kCloseAbnormal};
    }
    if (got.empty() && absl::Now() >= deadline) return Frame{};
  }
}

std::optional<int> RawWs::WaitClosed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    Frame f = Next(deadline - absl::Now());
    if (f.kind == Frame::kClose || f.kind == Frame::kLost) return f.code;
  }
  return std::nullopt;
}

std::string ChatJson(const std::string& text) {
  return absl::StrCat(R"({"message":")", text, R"("})");
}

// ------------------------------------------------------------------- ChatLoad

std::string ChatLoad::Counts::ToString() const {
  return absl::StrCat("sent=", sent, " delivered_to_all=", delivered_all, " reported=", reported,
                      " (unconfirmed=", unconfirmed, " not_delivered=", not_delivered,
                      ") reached_none=", delivered_none, " partial=", partial,
                      " silently_lost=", silently_lost, " (of which partial=", silent_partial,
                      ") duplicated=", duplicated, " send_failed=", send_failed);
}

ChatLoad::ChatLoad(std::vector<Member> members, const std::string& room_prefix)
    : members_(std::move(members)), room_prefix_(room_prefix) {
  for (const Member& m : members_) rooms_ = std::max(rooms_, m.room + 1);
  room_size_.assign(rooms_, 0);
  for (const Member& m : members_) index_in_room_.push_back(room_size_[m.room]++);
  connected_ = true;
  for (const Member& m : members_) {
    auto ws = RawWs::Connect(m.edge_port, absl::StrCat("/ws/chat/", room_prefix_, m.room, "/"));
    EXPECT_TRUE(ws.ok()) << ws.status();
    if (!ws.ok()) {
      connected_ = false;
      return;
    }
    sockets_.push_back(*std::move(ws));
  }
  for (size_t i = 0; i < members_.size(); ++i) readers_.emplace_back([this, i] { ReadLoop(i); });
}

ChatLoad::~ChatLoad() {
  stop_sending_ = true;
  stop_reading_ = true;
  if (pacer_.joinable()) pacer_.join();
  for (auto& t : readers_) t.join();
}

void ChatLoad::Start(double rate) {
  pacer_ = std::thread([this, rate] { Pace(rate); });
}

void ChatLoad::Stop(absl::Duration drain) {
  stop_sending_ = true;
  if (pacer_.joinable()) pacer_.join();
  absl::SleepFor(drain);
  stop_reading_ = true;
  for (auto& t : readers_) t.join();
  readers_.clear();
}

void ChatLoad::Pace(double rate) {
  std::vector<int> senders;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].sender) senders.push_back(i);
  }
  if (senders.empty() || !connected_) return;
  const absl::Time start = absl::Now();
  for (uint64_t k = 0; !stop_sending_; ++k) {
    const absl::Time due = start + absl::Seconds(static_cast<double>(k) / rate);
    const absl::Duration wait = due - absl::Now();
    if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    const int sender = senders[k % senders.size()];
    const int only = only_from_.load();
    if (only != 0 && members_[sender].edge_port != only) continue;
    int64_t id;
    {
      absl::MutexLock lock(&mu_);
      id = static_cast<int64_t>(messages_.size());
      Message m;
      m.room = members_[sender].room;
      m.sender = sender;
      m.sent = absl::Now();
      m.copies.assign(room_size_[m.room], 0);
      m.first_at.assign(room_size_[m.room], absl::InfiniteFuture());
      messages_.push_back(std::move(m));
    }
    if (!sockets_[sender]->SendText(ChatJson(absl::StrCat("m", id)))) {
      absl::MutexLock lock(&mu_);
      messages_[id].send_failed = true;
    }
  }
}

void ChatLoad::ReadLoop(int member) {
  RawWs& ws = *sockets_[member];
  const int slot = index_in_room_[member];
  while (!stop_reading_) {
    RawWs::Frame f = ws.Next(absl::Milliseconds(100));
    if (f.kind == RawWs::Frame::kTimeout) continue;
    if (f.kind != RawWs::Frame::kText) {
      if (members_[member].edge_port == lost_ok_.load()) return;
      ADD_FAILURE() << "member " << member << " of room " << members_[member].room
                    << " lost its socket: close code " << f.code;
      return;
    }
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&mu_);
    if (int64_t id = IdAfter(f.text, "\"undelivered\":\""); id >= 0) {
      if (id < static_cast<int64_t>(messages_.size()) && messages_[id].sender == member) {
        messages_[id].report = StringAfter(f.text, "\"error\":\"");
      } else {
        ++stray_frames_;
      }
    } else if (int64_t id = IdAfter(f.text, "\"message\":\""); id >= 0) {
      if (id < static_cast<int64_t>(messages_.size()) &&
          messages_[id].room == members_[member].room) {
        Message& m = messages_[id];
        if (m.copies[slot] == 0) m.first_at[slot] = now;
        if (m.copies[slot] < 255) ++m.copies[slot];
        m.last_copy = std::max(m.last_copy, now);
      } else {
        ++stray_frames_;
      }
    } else {
      ++stray_frames_;
    }
  }
}

ChatLoad::Counts ChatLoad::Count(absl::Time from, absl::Time to) {
  Counts c;
  absl::MutexLock lock(&mu_);
  for (const Message& m : messages_) {
    if (m.sent < from || m.sent >= to) continue;
    ++c.sent;
    if (m.send_failed) {
      ++c.send_failed;
      continue;
    }
    const int reached =
        std::count_if(m.copies.begin(), m.copies.end(), [](uint8_t n) { return n > 0; });
    const bool all = reached == static_cast<int>(m.copies.size());
    if (all) ++c.delivered_all;
    if (reached == 0) ++c.delivered_none;
    if (reached > 0 && !all) ++c.partial;
    if (std::any_of(m.copies.begin(), m.copies.end(), [](uint8_t n) { return n > 1; })) {
      ++c.duplicated;
    }
    if (!m.report.empty()) {
      ++c.reported;
      if (m.report == "unconfirmed") ++c.unconfirmed;
      if (m.report == "not_delivered") ++c.not_delivered;
    } else if (!all) {
      ++c.silently_lost;
      if (reached > 0) ++c.silent_partial;
    }
  }
  return c;
}

int ChatLoad::ReachedLocalMembersWithin(int edge_port, absl::Time from, absl::Time to,
                                        absl::Duration latency, int* total) {
  absl::MutexLock lock(&mu_);
  int ok = 0;
  *total = 0;
  for (const Message& m : messages_) {
    if (m.sent < from || m.sent >= to || m.send_failed ||
        members_[m.sender].edge_port != edge_port) {
      continue;
    }
    ++*total;
    bool in_time = true;
    for (size_t i = 0; i < members_.size(); ++i) {
      if (members_[i].room != m.room || members_[i].edge_port != edge_port) continue;
      const int slot = index_in_room_[i];
      if (m.copies[slot] == 0 || m.first_at[slot] - m.sent > latency) in_time = false;
    }
    if (in_time) ++ok;
  }
  return ok;
}

absl::Duration ChatLoad::Recovery(absl::Time since, absl::Time until, absl::Duration* settled) {
  absl::MutexLock lock(&mu_);
  absl::Duration worst = absl::ZeroDuration(), worst_settled = absl::ZeroDuration();
  for (int room = 0; room < rooms_; ++room) {
    std::vector<const Message*> after;
    for (const Message& m : messages_) {
      if (m.room == room && m.sent >= since && m.sent < until && !m.send_failed) {
        after.push_back(&m);
      }
    }
    auto recovery = [&](bool need_unreported) {
      size_t first_good = 0;
      for (size_t i = 0; i < after.size(); ++i) {
        const bool all = std::all_of(after[i]->copies.begin(), after[i]->copies.end(),
                                     [](uint8_t n) { return n > 0; });
        if (!all || (need_unreported && !after[i]->report.empty())) first_good = i + 1;
      }
      if (first_good >= after.size()) return absl::InfiniteDuration();
      return after[first_good]->last_copy - since;
    };
    worst = std::max(worst, recovery(false));
    worst_settled = std::max(worst_settled, recovery(true));
  }
  if (settled != nullptr) *settled = worst_settled;
  return worst;
}

}  // namespace chat::testing
