// groupsvc: the channel layer of the chat system, as a gRPC service.
#include <google/protobuf/stubs/logging.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "groupsvc/server.h"
#include "shared/log.h"
#include "shared/signals.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC address HOST:PORT; port 0 picks a free one");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9090",
          "Prometheus /metrics address HOST:PORT; empty to disable");
ABSL_FLAG(int64_t, capacity, 100, "undelivered events one queued channel holds");
ABSL_FLAG(std::string, capacity_overrides, "",
          "per-channel capacities, PATTERN=N,... (glob patterns, first match wins), "
          "e.g. 'specific.*=500,backend.*=1000'");
ABSL_FLAG(absl::Duration, expiry, absl::Seconds(60), "undelivered events expire after this");
ABSL_FLAG(absl::Duration, group_expiry, absl::Seconds(86400),
          "a membership lapses this long after its latest group_add");
ABSL_FLAG(int64_t, history_size, 100,
          "latest events each group keeps for GetHistory (and reconnecting clients); 0: none");
ABSL_FLAG(absl::Duration, history_ttl, absl::Minutes(10), "how long a group keeps an event");
ABSL_FLAG(int64_t, history_bytes, 64 << 20, "bytes of history kept over all groups");
ABSL_FLAG(absl::Duration, presence_debounce, absl::Seconds(3),
          "how long a user whose last connection left a room is still listed (a reconnect "
          "within it is no leave); a lost edge's users leave at once");
ABSL_FLAG(int64_t, max_event_bytes, 256 << 10, "largest event accepted (type plus JSON)");
ABSL_FLAG(int64_t, max_queued_bytes, 256 << 20, "bytes of undelivered events queued in all");
ABSL_FLAG(int64_t, edge_queue_bytes, 32 << 20,
          "bytes queued for one edge's stream before further copies are dropped");
ABSL_FLAG(absl::Duration, stream_coalesce, absl::ZeroDuration(),
          "while more than --stream_coalesce_above acks and deliveries a second go to one edge, "
          "its next stream write waits until this long after the previous one started, taking "
          "what came meanwhile (fewer messages, more latency); 0: off (bench/README.md)");
ABSL_FLAG(double, stream_coalesce_above, 2000,
          "the rate (items a second, per edge stream) above which --stream_coalesce engages");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(3),
          "after start, group_sends are acked unsettled (may not have reached every member) "
          "for this long, while edges re-attach and replay their memberships; 0 to disable");
ABSL_FLAG(absl::Duration, unsettled_window, absl::Seconds(5),
          "after an edge's stream is lost, group_sends to the groups it had members in are "
          "acked unsettled until it re-attaches and replays, for at most this long; 0 to disable");
ABSL_FLAG(int32_t, rpc_threads, 1,
          "gRPC completion loops, one polling thread each (a stream stays on the loop that "
          "accepted it); 1 costs the least per message (bench/README.md)");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(10), "how long SIGTERM waits for streams to drain");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of groupsvc's TLS port (with --tls_key); reloaded when the file "
          "changes; empty: plaintext (logged as a warning)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert; reloaded with it");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle that signs edges' client certificates (mutual TLS): Attach then needs a "
          "client certificate from it whose DNS names include the edge id; reloaded");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(10),
          "how often the TLS files are looked at for a new version (at least 1s)");
ABSL_FLAG(std::string, api_tokens_file, "",
          "bearer tokens of the unary API, one a line: NAME SCOPES TOKEN (scopes read,send,admin "
          "comma-separated; # starts a comment); re-read when it changes; empty: the API is open");
ABSL_FLAG(double, api_rate, 1000,
          "unary calls a second per caller (API token, or client address without tokens); past "
          "it RESOURCE_EXHAUSTED; 0: no limit");
ABSL_FLAG(double, api_burst, 2000, "unary calls one caller may make at once, above --api_rate");
ABSL_FLAG(int64_t, caller_queued_bytes, 64 << 20,
          "bytes of undelivered events one caller (API token, client address, or edge) may have "
          "queued on channels no edge owns; 0: only --max_queued_bytes");
ABSL_FLAG(std::string, health_listen, "",
          "HOST:PORT of a plaintext port serving only grpc.health.v1 (for kubelet's gRPC probes, "
          "which cannot speak TLS); empty: none");
ABSL_FLAG(std::string, shards, "",
          "every shard's gRPC address HOST:PORT,HOST:PORT,... in shard order, the same list as the "
          "edges' --groupsvc; empty: one shard (this one)");
ABSL_FLAG(std::string, shard_index, "0",
          "this shard's position in --shards, from 0; \"auto\": the ordinal at the end of the "
          "host name (a StatefulSet's pod groupsvc-2 is shard 2)");
ABSL_FLAG(
    uint32_t, bridge_shards, 0,
    "while the shard count changes (docs/sharding.md): the other count, old or new, "
    "that edges may still or already place by; --shards lists the larger set. Commands placed "
    "by either count are accepted and unary calls go where this count places them; 0: no "
    "change under way");
ABSL_FLAG(std::string, shard_tls_ca, "",
          "PEM CA bundle that signs the other shards' certificates, for the calls this shard "
          "forwards to them over TLS; empty: --tls_client_ca");

namespace {

// protobuf reports some parse failures itself (a string that is not UTF-8):
// one line in our format, like every other event.
void LogProtobuf(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  static constexpr const char* kLevels[] = {"info", "warning", "error", "fatal"};
  const int index = static_cast<int>(level);
  chat::LogEvent("protobuf_log",
                 {{"level", index >= 0 && index < 4 ? kLevels[index] : "?"}, {"message", message}});
}

bool ParseOverrides(const std::string& text, std::vector<std::pair<std::string, size_t>>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    size_t n = 0;
    if (kv.size() != 2 || kv[0].empty() || !absl::SimpleAtoi(kv[1], &n) || n == 0) return false;
    out->emplace_back(kv[0], n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "groupsvc: the chat system's channel layer (groups, channels, events) over gRPC.\n"
      "  groupsvc --listen=0.0.0.0:50051 --metrics_listen=0.0.0.0:9090");
  absl::ParseCommandLine(argc, argv);
  // Debian builds Abseil without NDEBUG, which leaves Mutex deadlock detection
  // on: a global graph update on every lock. The tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  chat::SetLogComponent("groupsvc");
  google::protobuf::SetLogHandler(&LogProtobuf);

  groupsvc::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.registry.capacity = absl::GetFlag(FLAGS_capacity);
  options.registry.expiry = absl::GetFlag(FLAGS_expiry);
  options.registry.group_expiry = absl::GetFlag(FLAGS_group_expiry);
  options.registry.history.per_group =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_history_size)));
  options.registry.history.ttl = absl::GetFlag(FLAGS_history_ttl);
  options.registry.presence_debounce = absl::GetFlag(FLAGS_presence_debounce);
  options.registry.history.max_bytes =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_history_bytes)));
  options.registry.max_event_bytes = absl::GetFlag(FLAGS_max_event_bytes);
  options.registry.max_queued_bytes = absl::GetFlag(FLAGS_max_queued_bytes);
  options.registry.warmup = absl::GetFlag(FLAGS_warmup);
  options.registry.unsettled_window = absl::GetFlag(FLAGS_unsettled_window);
  options.attach.max_queue_bytes = absl::GetFlag(FLAGS_edge_queue_bytes);
  options.attach.coalesce_delay = absl::GetFlag(FLAGS_stream_coalesce);
  options.attach.coalesce_above_rate = absl::GetFlag(FLAGS_stream_coalesce_above);
  if (options.attach.coalesce_delay < absl::ZeroDuration() ||
      options.attach.coalesce_delay > absl::Milliseconds(5)) {
    fprintf(stderr, "groupsvc: --stream_coalesce must be between 0 and 5ms\n");
    return 2;
  }
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.rpc_threads = absl::GetFlag(FLAGS_rpc_threads);
  if (options.rpc_threads < 1 || options.rpc_threads > 64) {
    fprintf(stderr, "groupsvc: --rpc_threads must be between 1 and 64\n");
    return 2;
  }
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.tls.reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  options.api.tokens_file = absl::GetFlag(FLAGS_api_tokens_file);
  options.api.rate = absl::GetFlag(FLAGS_api_rate);
  options.api.burst = absl::GetFlag(FLAGS_api_burst);
  if (absl::GetFlag(FLAGS_api_rate) < 0 || absl::GetFlag(FLAGS_api_burst) < 0 ||
      absl::GetFlag(FLAGS_caller_queued_bytes) < 0) {
    fprintf(stderr,
            "groupsvc: --api_rate, --api_burst and --caller_queued_bytes must not be negative\n");
    return 2;
  }
  options.api.caller_queued_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_caller_queued_bytes));
  if (options.registry.warmup < absl::ZeroDuration() ||
      options.registry.unsettled_window < absl::ZeroDuration()) {
    fprintf(stderr, "groupsvc: --warmup and --unsettled_window must not be negative\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_capacity) <= 0 || absl::GetFlag(FLAGS_max_event_bytes) <= 0 ||
      !ParseOverrides(absl::GetFlag(FLAGS_capacity_overrides),
                      &options.registry.capacity_overrides)) {
    fprintf(stderr,
            "groupsvc: --capacity and --max_event_bytes must be positive and "
            "--capacity_overrides of the form PATTERN=N,PATTERN=N\n");
    return 2;
  }

  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  absl::StatusOr<groupsvc::ShardMap> shards = groupsvc::ShardMap::Make(
      absl::StrSplit(absl::GetFlag(FLAGS_shards), ',', absl::SkipEmpty()),
      absl::GetFlag(FLAGS_shard_index), hostname, absl::GetFlag(FLAGS_bridge_shards));
  if (!shards.ok()) {
    fprintf(stderr, "groupsvc: %s\n", std::string(shards.status().message()).c_str());
    return 2;
  }
  options.shards = *std::move(shards);
  options.shard_tls_ca_file = absl::GetFlag(FLAGS_shard_tls_ca);

  // Taken by WaitForTerminationSignal below, in no thread the server starts.
  chat::BlockTerminationSignals();

  auto server = groupsvc::GroupServer::Start(options);
  if (!server.ok()) {
    chat::LogEvent("start_failed", {{"error", server.status().message()}});
    return 1;
  }
  const std::string port = absl::StrCat((*server)->port());
  const std::string metrics_port = absl::StrCat((*server)->metrics_port());
  chat::LogEvent("listening",
                 {{"listen", options.listen},
                  {"port", port},
                  {"metrics_port", metrics_port},
                  {"health_port", absl::StrCat((*server)->health_port())},
                  {"shard", absl::StrCat(options.shards.self(), "/", options.shards.count())},
                  {"bridge_shards", absl::StrCat(options.shards.bridge())}});

  const char* signal_name = chat::WaitForTerminationSignal();
  const absl::Duration grace = absl::GetFlag(FLAGS_grace);
  chat::LogEvent("draining", {{"signal", signal_name}, {"grace", absl::FormatDuration(grace)}});
  (*server)->Shutdown(grace);
  (*server)->Wait();
  chat::LogEvent("stopped");
  return 0;
}
