// Helpers of the fault suite (tests/faults/fault_test.cc): the binaries under
// test (overridable by environment, to run the suite against an older build),
// a blocking WebSocket client on a raw socket that can bind a source address
// and shrink its receive buffer, a bound HTTP GET, and a ledger that follows
// every message of an open-loop load to every member of its room.
//
//   Servers s;  s.StartGroupsvc();  int a = s.StartEdge("edge-a");
//   auto c = RawWs::Connect(a, "/ws/chat/lobby/", {.source_ip = "127.0.0.2"});
//   (*c)->SendText(R"({"message":"hi"})");
//   RawWs::Frame f = (*c)->Next(absl::Seconds(5));   // text, close (with its code), lost, timeout
#ifndef CHAT_TESTS_FAULTS_FAULT_SUPPORT_H_
#define CHAT_TESTS_FAULTS_FAULT_SUPPORT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/support/child_process.h"

namespace chat::testing {

// WebSocket close codes (RFC 6455 7.4.1) the suite names in assertions.
inline constexpr int kCloseGoingAway = 1001;
inline constexpr int kClosePolicyViolation = 1008;
inline constexpr int kCloseTryAgainLater = 1013;
inline constexpr int kCloseAbnormal = 1006;  // No close frame: the TCP connection ended.
inline constexpr int kHttpOk = 200;
inline constexpr int kHttpServiceUnavailable = 503;

// The binaries: $CHAT_FAULT_EDGE_BIN / $CHAT_FAULT_GROUPSVC_BIN, else the ones
// this test binary was built with.
std::string EdgeBin();
std::string GroupsvcBin();
// True when either is overridden (an older build may not know every flag).
bool BinariesOverridden();
// A load phase's length: the default, or $CHAT_FAULT_SECONDS if that is longer.
absl::Duration LoadPhase(absl::Duration short_default);

// A started server and the ports it logged.
struct Server {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  int metrics_port = 0;  // Edges: their own metrics port (or `port` for an old edge).
};

// Starts `argv` (an edge gets --metrics_listen=127.0.0.1:0) and waits for its
// " listening " line. `wrapper` (e.g. {"/usr/bin/prlimit", "--nofile=512:512"}) goes first.
absl::StatusOr<Server> StartServer(std::vector<std::string> argv, bool edge,
                                   std::vector<std::string> wrapper = {});
// groupsvc on `port` (0: any). A first start (no edge to wait for) passes
// {"--warmup=0s"}; a restart keeps the default warm-up.
absl::StatusOr<Server> StartGroupsvc(int port = 0, std::vector<std::string> flags = {});
// An edge on port 0; groupsvc_port 0: the in-process layer.
absl::StatusOr<Server> StartEdge(int groupsvc_port, const std::string& edge_id,
                                 std::vector<std::string> flags = {},
                                 std::vector<std::string> wrapper = {});

// A sample of a metric line (e.g. `edge_drops_total{reason="slow_reader"}`);
// 0 if the metric has no sample yet, -1 if /metrics did not answer.
double Metric(int metrics_port, const std::string& line_prefix);

// The status of GET `path` from `source_ip`; 0 if no answer came within `timeout`.
int BoundHttpGet(const std::string& source_ip, int port, const std::string& path,
                 absl::Duration timeout);

// A nonblocking TCP socket from `source_ip` (empty: any), connected within
// `timeout`; -1 on failure. `rcvbuf` > 0 sets SO_RCVBUF first.
int ConnectTcp(int port, const std::string& source_ip, int rcvbuf, absl::Duration timeout);

// Waits until `fd` is readable or `timeout`; reads what there is. Returns the
// bytes read; `eof` is set when the peer closed (or reset) the connection.
std::string ReadSome(int fd, absl::Duration timeout, bool* eof);

// A WebSocket client on a raw socket. SendText/SendRaw may be called from
// several threads while one other thread calls Next().
class RawWs {
 public:
  struct Options {
    std::string source_ip;  // Empty: the kernel picks (127.0.0.1 towards 127.0.0.1).
    int rcvbuf = 0;         // > 0: SO_RCVBUF, set before connecting.
    std::string origin;     // Empty: no Origin header.

    static Options From(std::string ip) {
      Options o;
      o.source_ip = std::move(ip);
      return o;
    }
    static Options Rcvbuf(int bytes) {
      Options o;
      o.rcvbuf = bytes;
      return o;
    }
  };
  struct Frame {
    enum Kind { kText, kClose, kLost, kTimeout } kind = kTimeout;
    std::string text;
    int code = 0;  // kClose: the close code (1005 if none); kLost: 1006.
  };

  // A refused handshake is FAILED_PRECONDITION with "HTTP <status>" in the message.
  static absl::StatusOr<std::unique_ptr<RawWs>> Connect(int port, const std::string& path,
                                                        const Options& options);
  static absl::StatusOr<std::unique_ptr<RawWs>> Connect(int port, const std::string& path) {
    return Connect(port, path, Options{});
  }
  ~RawWs();

  bool SendText(const std::string& text);
  // Bytes as they are (e.g. a partial frame).
  bool SendRaw(const std::string& bytes);
  // The next frame (pings are answered, a close is answered once).
  Frame Next(absl::Duration timeout);
  // Reads until a close or the end of the connection; the close code (1006
  // for a connection that ended without one), nullopt after `timeout`.
  std::optional<int> WaitClosed(absl::Duration timeout);
  int fd() const { return fd_; }

 private:
  explicit RawWs(int fd) : fd_(fd) {}
  bool WriteAll(const std::string& bytes);
  std::optional<Frame> ParseOne();

  const int fd_;
  absl::Mutex write_mu_;
  std::string in_;         // Read, not yet parsed (only Next's thread).
  std::string fragments_;  // A text message in fragments so far.
  bool close_answered_ = false;
  std::optional<int> closed_;
};

// The JSON of a chat message, and the id in one we sent ("m<id>"), if any.
std::string ChatJson(const std::string& text);

// Open-loop chat load over rooms whose members sit on several edges, with
// every message followed to every member: delivered to all, reported to its
// sender (error frame with "undelivered"), silently lost, duplicated.
class ChatLoad {
 public:
  struct Member {
    int room;
    int edge_port;
    bool sender;
  };
  struct Counts {
    int sent = 0;
    int delivered_all = 0;
    int reported = 0;  // An error frame for it reached its sender.
    int unconfirmed = 0, not_delivered = 0;
    int delivered_none = 0;
    int partial = 0;         // Reached some members, not all.
    int silently_lost = 0;   // Not reached every member, and not reported.
    int silent_partial = 0;  // ... of which reached some members.
    int duplicated = 0;      // Some member got it twice or more.
    int send_failed = 0;     // The sender's socket would not take it.
    std::string ToString() const;
  };

  // Connects every member (fails the test on a refused handshake).
  explicit ChatLoad(std::vector<Member> members, const std::string& room_prefix = "fault");
  ~ChatLoad();

  // Messages per second in total, round-robin over the senders.
  void Start(double rate);
  // Stops sending; waits `drain` for late frames, then stops reading.
  void Stop(absl::Duration drain = absl::Seconds(2));
  // Only the senders on `edge_port` send (0: every sender).
  void OnlyFrom(int edge_port) { only_from_.store(edge_port); }
  // The members on `edge_port` may lose their sockets (that edge is killed).
  void ExpectLost(int edge_port) { lost_ok_.store(edge_port); }

  // Over the messages sent in [from, to).
  Counts Count(absl::Time from, absl::Time to);
  // Of the messages sent from `edge_port` in [from, to) (their number in
  // `total`), how many reached every member of their room on `edge_port`
  // within `latency` of being sent.
  int ReachedLocalMembersWithin(int edge_port, absl::Time from, absl::Time to,
                                absl::Duration latency, int* total);
  // How long after `since` the chat flowed again in every room: for each room,
  // when the last member got the first message sent in [since, until) that,
  // and every later one in that span, reached every member; the worst room.
  // InfiniteDuration if some room never recovered. `settled`, if given: the
  // same, for messages that were also not reported to their sender.
  absl::Duration Recovery(absl::Time since, absl::Time until, absl::Duration* settled = nullptr);
  int rooms() const { return rooms_; }
  bool connected() const { return connected_; }

 private:
  struct Message {
    int room;
    int sender;
    absl::Time sent;
    std::vector<uint8_t> copies;       // Per member of the room.
    std::vector<absl::Time> first_at;  // When each member got its first copy.
    absl::Time last_copy = absl::InfinitePast();
    std::string report;  // "unconfirmed" | "not_delivered" | other error | "".
    bool send_failed = false;
  };

  void Pace(double rate);
  void ReadLoop(int member);

  std::vector<Member> members_;
  std::vector<int> index_in_room_;
  std::vector<int> room_size_;
  int rooms_ = 0;
  std::string room_prefix_;
  std::vector<std::unique_ptr<RawWs>> sockets_;
  bool connected_ = false;
  std::atomic<bool> stop_sending_{false}, stop_reading_{false};
  std::atomic<int> only_from_{0};
  std::atomic<int> lost_ok_{0};
  std::thread pacer_;
  std::vector<std::thread> readers_;
  absl::Mutex mu_;
  std::vector<Message> messages_ ABSL_GUARDED_BY(mu_);
  int stray_frames_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace chat::testing

#endif  // CHAT_TESTS_FAULTS_FAULT_SUPPORT_H_
