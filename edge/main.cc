// edge: the chat system's HTTP and WebSocket server.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "edge/server.h"
#include "shared/log.h"
#include "shared/signals.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:8000",
          "HTTP/WebSocket address HOST:PORT; port 0 picks one");
ABSL_FLAG(std::string, groupsvc, "",
          "groupsvc's gRPC address HOST:PORT; empty: the in-process layer (a single edge)");
ABSL_FLAG(std::string, edge_id, "", "this edge's id at groupsvc (default: the host name)");
ABSL_FLAG(int, threads, 1, "I/O threads");
ABSL_FLAG(int64_t, max_frame_bytes, 64 << 10, "larger client frames close with 1009");
ABSL_FLAG(int64_t, max_queue_frames, 1024, "a client with more unsent frames is closed (1013)");
ABSL_FLAG(int64_t, max_queue_bytes, 4 << 20, "a client with more unsent bytes is closed (1013)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "a WebSocket silent this long is dropped; pings go out at half of it");
ABSL_FLAG(
    std::vector<std::string>, allowed_origins, {},
    "origins allowed besides the page's own host, e.g. https://chat.example.com,.example.com");
ABSL_FLAG(bool, log_connections, false, "log every WebSocket open and close");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(10), "how long SIGTERM waits for sockets to close");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "edge: serves the chat pages and WebSockets at /ws/chat/<room>/.\n"
      "  edge --listen=0.0.0.0:8000 --groupsvc=127.0.0.1:50051");
  absl::ParseCommandLine(argc, argv);
  // Debian builds Abseil without NDEBUG, which leaves Mutex deadlock detection
  // on: a global graph update on every lock. The tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  chat::SetLogComponent("edge");

  edge::EdgeServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.groupsvc = absl::GetFlag(FLAGS_groupsvc);
  options.edge_id = absl::GetFlag(FLAGS_edge_id);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.edge.max_frame_bytes = absl::GetFlag(FLAGS_max_frame_bytes);
  options.edge.max_queue_frames = absl::GetFlag(FLAGS_max_queue_frames);
  options.edge.max_queue_bytes = absl::GetFlag(FLAGS_max_queue_bytes);
  options.edge.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  options.edge.allowed_origins = absl::GetFlag(FLAGS_allowed_origins);
  options.edge.log_connections = absl::GetFlag(FLAGS_log_connections);
  if (options.threads < 1 || absl::GetFlag(FLAGS_max_frame_bytes) <= 0 ||
      absl::GetFlag(FLAGS_max_queue_frames) <= 0) {
    fprintf(stderr, "edge: --threads, --max_frame_bytes and --max_queue_frames must be positive\n");
    return 2;
  }

  // Taken by WaitForTerminationSignal below, in no thread the server starts.
  chat::BlockTerminationSignals();

  auto server = edge::EdgeServer::Start(options);
  if (!server.ok()) {
    chat::LogEvent("start_failed", {{"error", server.status().message()}});
    return 1;
  }
  chat::LogEvent("listening", {{"listen", options.listen},
                               {"port", absl::StrCat((*server)->port())},
                               {"edge", (*server)->edge_id()},
                               {"layer", options.groupsvc.empty() ? "memory" : options.groupsvc}});

  const char* signal_name = chat::WaitForTerminationSignal();
  const absl::Duration grace = absl::GetFlag(FLAGS_grace);
  chat::LogEvent("draining", {{"signal", signal_name}, {"grace", absl::FormatDuration(grace)}});
  (*server)->Shutdown(grace);
  chat::LogEvent("stopped");
  return 0;
}
