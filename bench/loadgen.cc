// loadgen: a WebSocket load generator for the chat protocol of /ws/chat/<room>/.
//
// R rooms x M members are spread round-robin over the target edges (so every
// room spans the edges). Every message carries a sequence number and a send
// timestamp; every receiver measures latency. One event loop per thread, a
// hard time cap, loopback targets only. Prints one JSON line.
//
//   loadgen --targets=127.0.0.1:8000,127.0.0.1:8001 --mode=closed --rooms=10 --members=10
//   loadgen --mode=open --rate=200 ...
//       (timestamps from the schedule: no coordinated omission)
//   loadgen --mode=idle --connections=2000 ...
//       (holds sockets, reports server RSS per connection)
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

ABSL_FLAG(std::vector<std::string>, targets, {"127.0.0.1:8000"}, "edge HOST:PORTs (loopback only)");
ABSL_FLAG(std::string, mode, "closed", "closed | open | idle");
ABSL_FLAG(int, rooms, 10, "rooms");
ABSL_FLAG(int, members, 10, "members per room");
ABSL_FLAG(int, size, 64, "bytes of each client frame");
ABSL_FLAG(double, rate, 200, "open loop: messages per second in total");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(3), "load before measuring");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "measured time");
ABSL_FLAG(absl::Duration, drain, absl::Seconds(3), "wait for stragglers after sending stops");
ABSL_FLAG(int, threads, 1, "event loops");
ABSL_FLAG(std::vector<std::string>, server_pids, {}, "PIDs whose CPU and RSS to report");
ABSL_FLAG(std::vector<std::string>, server_names, {},
          "a name for each of --server_pids, for the per-process figures (default: the PID)");
ABSL_FLAG(int, connections, 0, "idle: sockets to open (default rooms x members)");
ABSL_FLAG(absl::Duration, hold, absl::Seconds(5), "idle: how long to hold them");
ABSL_FLAG(std::vector<std::string>, source_ips, {},
          "local addresses to bind, round-robin (127.0.0.x)");
ABSL_FLAG(std::string, room_prefix, "bench", "room names are <prefix><n>");
ABSL_FLAG(int, senders_per_room, 0, "closed/open: senders per room (default: every member)");
ABSL_FLAG(absl::Duration, time_cap, absl::Seconds(300), "hard cap on the whole run");

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Stats {
  absl::Mutex mu;
  std::vector<uint32_t> latencies;  // µs, measured messages only
  uint64_t sent = 0, expected = 0, delivered = 0, errors = 0, open = 0;
};

struct Shared {
  Stats stats;
  std::atomic<int64_t> measure_from{INT64_MAX}, measure_to{INT64_MAX};
  std::atomic<bool> stop_sending{false};
  std::atomic<int> connected{0};
  std::atomic<int> failed{0};
  int members = 0;
  int size = 0;
  bool closed_loop = true;
};

bool Measured(const Shared& s, int64_t sent_us) {
  return sent_us >= s.measure_from.load() && sent_us < s.measure_to.load();
}

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(net::io_context& ioc, Shared* shared, int id, std::string room, tcp::endpoint target,
         std::string source, bool sender)
      : ws_(net::make_strand(ioc)),
        shared_(shared),
        id_(id),
        room_(std::move(room)),
        target_(target),
        source_(std::move(source)),
        sender_(sender) {}

  void Start() {
    auto& sock = beast::get_lowest_layer(ws_).socket();
    beast::error_code ec;
    sock.open(target_.protocol(), ec);
    if (!source_.empty()) sock.bind(tcp::endpoint(net::ip::make_address(source_), 0), ec);
    if (ec) return Fail();
    beast::get_lowest_layer(ws_).async_connect(
        target_, [self = shared_from_this()](beast::error_code ec) {
          if (ec) return self->Fail();
          beast::get_lowest_layer(self->ws_).socket().set_option(tcp::no_delay(true));
          self->ws_.async_handshake(
              absl::StrCat(self->target_.address().to_string(), ":", self->target_.port()),
              absl::StrCat("/ws/chat/", self->room_, "/"), [self](beast::error_code ec) {
                if (ec) return self->Fail();
                self->shared_->connected++;
                self->open_ = true;
                self->Read();
              });
        });
  }

  // Open loop: send one message stamped with its scheduled time.
  void SendScheduled(int64_t scheduled_us) {
    net::post(ws_.get_executor(),
              [self = shared_from_this(), scheduled_us] { self->Send(scheduled_us); });
  }
  void StartClosedLoop() {
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->Send(NowUs()); });
  }
  bool open() const { return open_; }
  bool sender() const { return sender_; }
  int id() const { return id_; }
  void Close() {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      beast::get_lowest_layer(self->ws_).socket().close(ec);
    });
  }

 private:
  void Fail() {
    shared_->failed++;
    absl::MutexLock lock(&shared_->stats.mu);
    shared_->stats.errors++;
  }

  void Send(int64_t stamp_us) {
    if (!open_ || shared_->stop_sending) return;
    // {"message":"<seq>:<stamp>:<sender>:<padding>"} padded to --size bytes.
    std::string body = absl::StrCat(seq_++, ":", stamp_us, ":", id_, ":");
    const size_t overhead = 14;  // {"message":""}
    if (body.size() + overhead < static_cast<size_t>(shared_->size)) {
      body.append(shared_->size - overhead - body.size(), 'x');
    }
    auto frame = std::make_shared<std::string>(absl::StrCat("{\"message\":\"", body, "\"}"));
    if (Measured(*shared_, stamp_us)) {
      absl::MutexLock lock(&shared_->stats.mu);
      shared_->stats.sent++;
      shared_->stats.expected += shared_->members;
    }
    queue_.push_back(std::move(frame));
    if (!writing_) Write();
  }

  void Write() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(*queue_.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->queue_.erase(self->queue_.begin());
                      self->writing_ = false;
                      if (ec) {
                        self->open_ = false;
                        return self->Fail();
                      }
                      if (!self->queue_.empty()) self->Write();
                    });
  }

  void Read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        if (self->open_) self->Fail();
        self->open_ = false;
        return;
      }
      self->OnFrame(beast::buffers_to_string(self->buffer_.data()));
      self->buffer_.consume(self->buffer_.size());
      self->Read();
    });
  }

  void OnFrame(const std::string& frame) {
    const int64_t now = NowUs();
    // {"message":"seq:stamp:sender:..."}, with or without a space after the
    // colon (Python's json.dumps writes one).
    size_t key = frame.find("\"message\"");
    size_t start = key == std::string::npos ? key : frame.find('"', key + 9);
    if (start == std::string::npos) return;
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::string_view(frame).substr(start + 1), absl::MaxSplits(':', 3));
    int64_t stamp = 0;
    int sender = -1;
    if (parts.size() < 3 || !absl::SimpleAtoi(parts[1], &stamp) ||
        !absl::SimpleAtoi(parts[2], &sender)) {
      return;
    }
    if (Measured(*shared_, stamp)) {
      batch_.push_back(static_cast<uint32_t>(std::max<int64_t>(0, now - stamp)));
      if (batch_.size() >= 256) Flush();
    }
    if (shared_->closed_loop && sender == id_) Send(NowUs());
  }

 public:
  void Flush() {
    absl::MutexLock lock(&shared_->stats.mu);
    shared_->stats.delivered += batch_.size();
    shared_->stats.latencies.insert(shared_->stats.latencies.end(), batch_.begin(), batch_.end());
    batch_.clear();
  }
  void FlushOnStrand(std::atomic<int>* pending) {
    net::post(ws_.get_executor(), [self = shared_from_this(), pending] {
      self->Flush();
      (*pending)--;
    });
  }

 private:
  websocket::stream<beast::tcp_stream> ws_;
  Shared* shared_;
  const int id_;
  const std::string room_;
  const tcp::endpoint target_;
  const std::string source_;
  const bool sender_;
  beast::flat_buffer buffer_;
  std::vector<std::shared_ptr<std::string>> queue_;
  bool writing_ = false;
  bool open_ = false;
  uint64_t seq_ = 0;
  std::vector<uint32_t> batch_;
};

double CpuSeconds(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/stat");
  std::string line;
  std::getline(f, line);
  size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
  double ticks = 0, t = 0;
  if (fields.size() > 12 && absl::SimpleAtod(fields[11], &t)) ticks += t;  // utime
  if (fields.size() > 12 && absl::SimpleAtod(fields[12], &t)) ticks += t;  // stime
  return ticks / sysconf(_SC_CLK_TCK);
}

// Context switches, voluntary and not, of every thread the process has now.
double ContextSwitches(const std::string& pid) {
  double total = 0;
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + pid + "/task", error)) {
    std::ifstream f(task.path() / "status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.find("ctxt_switches:") == std::string::npos) continue;
      double n = 0;
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtod(parts[1], &n)) total += n;
    }
  }
  return total;
}

double RssKb(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      double kb = 0;
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtod(parts[1], &kb)) return kb;
    }
  }
  return 0;
}

double SelfCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

uint32_t Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p / 100.0 * sorted.size()));
  return sorted[i];
}

// Open loop on the load generator's own threads: message k is due at
// start + k / rate and goes from sender k mod n. Each thread's timer sends for
// the senders on that thread, so no message waits for a wake-up of another
// thread (which would count against the server being measured).
class Pacer : public std::enable_shared_from_this<Pacer> {
 public:
  // `mine`: (k mod n, client) for this thread's senders, in k order.
  Pacer(net::io_context& ioc, std::vector<std::pair<size_t, Client*>> mine, size_t n,
        int64_t start_us, int64_t end_us, double rate, std::atomic<int>* running)
      : timer_(ioc),
        mine_(std::move(mine)),
        n_(n),
        start_us_(start_us),
        end_us_(end_us),
        rate_(rate),
        running_(running) {}

  void Start() {
    if (mine_.empty()) {
      --*running_;
      return;
    }
    Next();
  }

 private:
  void Next() {
    const uint64_t k = cycle_ * n_ + mine_[pos_].first;
    const int64_t due = start_us_ + static_cast<int64_t>(static_cast<double>(k) * 1e6 / rate_);
    if (due >= end_us_) {
      --*running_;
      return;
    }
    timer_.expires_at(Clock::time_point(std::chrono::microseconds(due)));
    timer_.async_wait([self = shared_from_this(), due](boost::system::error_code ec) {
      if (ec) {
        --*self->running_;
        return;
      }
      self->mine_[self->pos_].second->SendScheduled(due);
      if (++self->pos_ == self->mine_.size()) {
        self->pos_ = 0;
        ++self->cycle_;
      }
      self->Next();
    });
  }

  net::steady_timer timer_;
  const std::vector<std::pair<size_t, Client*>> mine_;
  const size_t n_;
  const int64_t start_us_, end_us_;
  const double rate_;
  std::atomic<int>* running_;
  size_t pos_ = 0;
  uint64_t cycle_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "WebSocket load generator for the chat protocol; prints one JSON line.");
  absl::ParseCommandLine(argc, argv);
  const auto deadline = Clock::now() + absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_time_cap));
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const int rooms = absl::GetFlag(FLAGS_rooms), members = absl::GetFlag(FLAGS_members);
  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  int total = mode == "idle" && absl::GetFlag(FLAGS_connections) > 0
                  ? absl::GetFlag(FLAGS_connections)
                  : rooms * members;
  std::vector<tcp::endpoint> targets;
  for (const std::string& t : absl::GetFlag(FLAGS_targets)) {
    std::vector<std::string> hp = absl::StrSplit(t, ':');
    int port = 0;
    auto address = net::ip::make_address(hp[0]);
    if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &port) || !address.is_loopback()) {
      fprintf(stderr, "loadgen: targets must be loopback HOST:PORT, got %s\n", t.c_str());
      return 2;
    }
    targets.emplace_back(address, port);
  }
  for (const std::string& ip : absl::GetFlag(FLAGS_source_ips)) {
    if (!net::ip::make_address(ip).is_loopback()) {
      fprintf(stderr, "loadgen: source addresses must be loopback\n");
      return 2;
    }
  }
  const std::vector<std::string> pids = absl::GetFlag(FLAGS_server_pids);
  const std::vector<std::string> sources = absl::GetFlag(FLAGS_source_ips);

  Shared shared;
  shared.members = members;
  shared.size = absl::GetFlag(FLAGS_size);
  shared.closed_loop = mode == "closed";
  std::vector<std::unique_ptr<net::io_context>> loops;
  for (int i = 0; i < threads; ++i) loops.push_back(std::make_unique<net::io_context>(1));

  double rss_before = 0;
  for (const auto& p : pids) rss_before += RssKb(p);

  const int senders =
      absl::GetFlag(FLAGS_senders_per_room) > 0 ? absl::GetFlag(FLAGS_senders_per_room) : members;
  std::vector<std::shared_ptr<Client>> clients;
  for (int i = 0; i < total; ++i) {
    const int room = i / members % std::max(1, rooms), member = i % members;
    clients.push_back(std::make_shared<Client>(
        *loops[i % threads], &shared, i, absl::StrCat(absl::GetFlag(FLAGS_room_prefix), room),
        targets[i % targets.size()], sources.empty() ? "" : sources[i % sources.size()],
        member < senders));
  }
  std::vector<std::thread> workers;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (auto& l : loops) guards.push_back(net::make_work_guard(*l));
  for (auto& l : loops) workers.emplace_back([l = l.get()] { l->run(); });
  // Connect in batches so that a listen backlog is never flooded.
  for (size_t i = 0; i < clients.size(); ++i) {
    clients[i]->Start();
    if (i % 200 == 199) {
      while (shared.connected + shared.failed < static_cast<int>(i) - 100 &&
             Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  while (shared.connected + shared.failed < total && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  std::string json;
  if (mode == "idle") {
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_hold)));
    int open = 0;
    for (auto& c : clients) open += c->open() ? 1 : 0;
    double rss_after = 0;
    for (const auto& p : pids) rss_after += RssKb(p);
    json = absl::StrFormat(
        R"({"mode":"idle","connections":%d,"open":%d,"failed":%d,"server_rss_kb_before":%.0f,)"
        R"("server_rss_kb_after":%.0f,"kb_per_connection":%.2f})",
        total, open, shared.failed.load(), rss_before, rss_after,
        open > 0 ? (rss_after - rss_before) / open : 0.0);
  } else {
    const auto warmup = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_warmup));
    const auto duration = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_duration));
    const int64_t start_us = NowUs();
    shared.measure_from =
        start_us + std::chrono::duration_cast<std::chrono::microseconds>(warmup).count();
    shared.measure_to = shared.measure_from +
                        std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
    std::vector<double> cpu_start(pids.size()), cs_start(pids.size());
    double self_start = 0;
    auto sample_start = [&] {
      for (size_t i = 0; i < pids.size(); ++i) {
        cpu_start[i] = CpuSeconds(pids[i]);
        cs_start[i] = ContextSwitches(pids[i]);
      }
      self_start = SelfCpu();
    };
    std::vector<Client*> active;
    for (auto& c : clients) {
      if (c->open() && c->sender()) active.push_back(c.get());
    }
    if (mode == "closed") {
      for (auto* c : active) c->StartClosedLoop();
      std::this_thread::sleep_for(warmup);
      sample_start();
      std::this_thread::sleep_for(duration);
    } else {
      // Open loop: message k is due at start + k / rate, from sender k mod n.
      const int64_t end_us = shared.measure_to.load();
      std::vector<std::vector<std::pair<size_t, Client*>>> per_loop(threads);
      for (size_t j = 0; j < active.size(); ++j) {
        per_loop[active[j]->id() % threads].emplace_back(j, active[j]);
      }
      std::atomic<int> running{threads};
      std::vector<std::shared_ptr<Pacer>> pacers;
      for (int i = 0; i < threads; ++i) {
        pacers.push_back(std::make_shared<Pacer>(*loops[i], std::move(per_loop[i]), active.size(),
                                                 start_us, end_us, absl::GetFlag(FLAGS_rate),
                                                 &running));
        net::post(*loops[i], [p = pacers.back()] { p->Start(); });
      }
      const int64_t until_measured = shared.measure_from.load() - NowUs();
      if (until_measured > 0)
        std::this_thread::sleep_for(std::chrono::microseconds(until_measured));
      sample_start();
      while (running > 0 && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    // Each process's CPU and context switches over the measured time, per
    // message sent in it (one group_send each): where the cost goes.
    double cpu = 0;
    std::string processes;
    const std::vector<std::string> names = absl::GetFlag(FLAGS_server_names);
    for (size_t i = 0; i < pids.size(); ++i) {
      const double process_cpu = CpuSeconds(pids[i]) - cpu_start[i];
      const double switches = ContextSwitches(pids[i]) - cs_start[i];
      cpu += process_cpu;
      absl::StrAppendFormat(&processes, R"(%s{"name":"%s","cpu_s":%.3f,"switches":%.0f})",
                            processes.empty() ? "" : ",", i < names.size() ? names[i] : pids[i],
                            process_cpu, switches);
    }
    const double self_cpu = SelfCpu() - self_start;
    shared.stop_sending = true;
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_drain)));
    std::atomic<int> pending{static_cast<int>(clients.size())};
    for (auto& c : clients) c->FlushOnStrand(&pending);
    while (pending > 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    absl::MutexLock lock(&shared.stats.mu);
    std::vector<uint32_t>& l = shared.stats.latencies;
    std::sort(l.begin(), l.end());
    const double secs = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration));
    const double per_s = shared.stats.delivered / secs;
    json = absl::StrFormat(
        R"({"mode":"%s","rooms":%d,"members":%d,"size":%d,"targets":%d,"seconds":%.1f,"sent":%d,)"
        R"("delivered":%d,"deliveries_per_s":%.0f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,)"
        R"("errors":%d,"missing":%d,"loadgen_cpu_s":%.2f,"server_cpu_s":%.2f,)"
        R"("deliveries_per_server_cpu_s":%.0f,"processes":[%s]})",
        mode, rooms, members, shared.size, static_cast<int>(targets.size()), secs,
        shared.stats.sent, shared.stats.delivered, per_s, Percentile(l, 50), Percentile(l, 90),
        Percentile(l, 99), l.empty() ? 0 : l.back(), shared.stats.errors,
        static_cast<int64_t>(shared.stats.expected) - static_cast<int64_t>(shared.stats.delivered),
        self_cpu, cpu, cpu > 0 ? shared.stats.delivered / cpu : 0.0, processes);
  }
  printf("%s\n", json.c_str());
  fflush(stdout);
  for (auto& c : clients) c->Close();
  guards.clear();
  for (auto& l : loops) l->stop();
  for (auto& w : workers) w.join();
  _exit(0);  // Sockets and their buffers go with the process.
}
