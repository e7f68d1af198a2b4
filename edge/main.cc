// edge: the chat system's HTTP and WebSocket server.
#include <algorithm>
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
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9091",
          "address HOST:PORT of /metrics (and /healthz), apart from the public port; port 0 picks "
          "one; empty: no metrics");
ABSL_FLAG(std::string, groupsvc, "",
          "groupsvc's gRPC address HOST:PORT, or its shards' HOST:PORT,HOST:PORT,... in shard "
          "order (the same list as groupsvc's --shards); empty: the in-process layer (a single "
          "edge)");
ABSL_FLAG(std::string, groupsvc_tls_ca, "",
          "PEM CA bundle that signs groupsvc's certificate: the link to groupsvc speaks TLS; "
          "empty: plaintext");
ABSL_FLAG(std::string, groupsvc_tls_cert, "",
          "PEM client certificate chain for groupsvc's mutual TLS (with --groupsvc_tls_key); its "
          "DNS names must include --edge_id; reloaded when the file changes");
ABSL_FLAG(std::string, groupsvc_tls_key, "", "PEM private key of --groupsvc_tls_cert; reloaded");
ABSL_FLAG(std::string, groupsvc_tls_server_name, "",
          "the name groupsvc's certificate must carry; empty: the host in --groupsvc");
ABSL_FLAG(absl::Duration, groupsvc_tls_reload_interval, absl::Seconds(10),
          "how often the --groupsvc_tls_* files are looked at for a new version (at least 1s)");
ABSL_FLAG(std::string, edge_id, "",
          "this edge's id at groupsvc, unique per process (default: the host name and a random "
          "suffix)");
ABSL_FLAG(int, threads, 1, "I/O threads, one event loop each; a connection stays on one");
ABSL_FLAG(int64_t, max_connections, 10000,
          "client TCP connections held at most (lowered to fit the open-file limit); more get 503");
ABSL_FLAG(int64_t, max_connections_per_ip, 1000,
          "client TCP connections from one address at most; more get 503");
ABSL_FLAG(int64_t, max_connections_per_user, 0,
          "WebSockets one signed-in user (token sub) may hold at once across every edge, counted "
          "by groupsvc (by this edge alone without --groupsvc); more get 429. 0: no cap");
ABSL_FLAG(int64_t, max_frame_bytes, 64 << 10, "larger client frames close with 1009");
ABSL_FLAG(int64_t, max_queue_frames, 1024, "a client with more unsent frames is closed (1013)");
ABSL_FLAG(int64_t, max_queue_bytes, 4 << 20, "a client with more unsent bytes is closed (1013)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "a WebSocket silent this long is dropped; pings go out at half of it");
ABSL_FLAG(absl::Duration, header_timeout, absl::Seconds(10),
          "an HTTP request must arrive whole within this");
ABSL_FLAG(absl::Duration, frame_timeout, absl::Seconds(10),
          "a WebSocket frame or message begun must be complete within this (else 1008)");
ABSL_FLAG(absl::Duration, write_timeout, absl::Seconds(5),
          "a write to a client in flight longer than this closes it (1013)");
ABSL_FLAG(int64_t, socket_send_buffer, 64 << 10,
          "kernel send buffer per WebSocket in bytes (SO_SNDBUF); 0: the kernel's autotuning");
ABSL_FLAG(std::vector<std::string>, allowed_hosts,
          std::vector<std::string>({"localhost", "127.0.0.1", "[::1]"}),
          "Host names WebSocket upgrades may name (Django's ALLOWED_HOSTS): chat.example.com, "
          ".example.com, or *");
ABSL_FLAG(
    std::vector<std::string>, allowed_origins, {},
    "origins allowed besides the page's own host, e.g. https://chat.example.com,.example.com");
ABSL_FLAG(bool, log_connections, false, "log every WebSocket open and close");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(10), "how long SIGTERM waits for sockets to close");
ABSL_FLAG(std::string, auth, "optional",
          "off (tokens ignored), optional (anonymous users chat, a valid token names them) or "
          "required (no upgrade without a valid token: 401)");
ABSL_FLAG(std::string, jwt_secret_file, "",
          "file holding the HS256 secret that signs the tokens (at least 32 bytes)");
ABSL_FLAG(std::string, jwks_file, "",
          "JWKS file of the identity provider's public keys, for RS256/384/512, PS256/384/512, "
          "ES256/384 and EdDSA tokens (the header's kid picks the key); read again when it "
          "changes, so a key rotation needs no restart");
ABSL_FLAG(
    std::string, jwks_url, "",
    "https:// URL of the identity provider's JWKS (instead of --jwks_file): fetched at start, "
    "every 5 minutes and when a token names an unknown kid (at most every 5 s), with "
    "backoff while the provider is down (the keys it has keep working)");
ABSL_FLAG(std::string, jwks_ca_file, "",
          "PEM CA bundle that signs --jwks_url's certificate; empty: the system's");
ABSL_FLAG(std::string, jwt_issuer, "", "when set, a token's iss must be exactly this");
ABSL_FLAG(std::string, jwt_audience, "",
          "when set, a token's aud (a string or a list) must include this");
ABSL_FLAG(int64_t, join_history, 20,
          "the room's latest messages a chat.v2 client gets on joining (and when it cannot "
          "recover what it missed); 0: none");
ABSL_FLAG(bool, dev_token_issuer, false,
          "POST /auth/token mints a 1-hour token for a display name (the lobby asks for one); "
          "for the local run only");
ABSL_FLAG(std::string, mint_token, "",
          "print a token for ID[:NAME] signed with --jwt_secret_file and exit (tests, backends)");
ABSL_FLAG(absl::Duration, mint_ttl, absl::Hours(1), "how long a --mint_token token is valid");
ABSL_FLAG(std::vector<std::string>, mint_rooms, {},
          "rooms (or *-patterns) a --mint_token token admits; empty: every room");

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
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.groupsvc = absl::GetFlag(FLAGS_groupsvc);
  options.edge_id = absl::GetFlag(FLAGS_edge_id);
  options.groupsvc_tls.ca_file = absl::GetFlag(FLAGS_groupsvc_tls_ca);
  options.groupsvc_tls.cert_file = absl::GetFlag(FLAGS_groupsvc_tls_cert);
  options.groupsvc_tls.key_file = absl::GetFlag(FLAGS_groupsvc_tls_key);
  options.groupsvc_tls.server_name = absl::GetFlag(FLAGS_groupsvc_tls_server_name);
  options.groupsvc_tls.reload_interval = absl::GetFlag(FLAGS_groupsvc_tls_reload_interval);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.max_connections =
      static_cast<size_t>(std::max<int64_t>(1, absl::GetFlag(FLAGS_max_connections)));
  options.max_connections_per_ip =
      static_cast<size_t>(std::max<int64_t>(1, absl::GetFlag(FLAGS_max_connections_per_ip)));
  options.edge.max_connections_per_user = static_cast<uint32_t>(
      std::clamp<int64_t>(absl::GetFlag(FLAGS_max_connections_per_user), 0, 1 << 30));
  options.edge.header_timeout = absl::GetFlag(FLAGS_header_timeout);
  options.edge.frame_timeout = absl::GetFlag(FLAGS_frame_timeout);
  options.edge.write_timeout = absl::GetFlag(FLAGS_write_timeout);
  options.edge.socket_send_buffer = static_cast<int>(absl::GetFlag(FLAGS_socket_send_buffer));
  options.edge.allowed_hosts = absl::GetFlag(FLAGS_allowed_hosts);
  options.edge.max_frame_bytes = absl::GetFlag(FLAGS_max_frame_bytes);
  options.edge.max_queue_frames = absl::GetFlag(FLAGS_max_queue_frames);
  options.edge.max_queue_bytes = absl::GetFlag(FLAGS_max_queue_bytes);
  options.edge.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  options.edge.allowed_origins = absl::GetFlag(FLAGS_allowed_origins);
  options.edge.log_connections = absl::GetFlag(FLAGS_log_connections);
  options.jwt_secret_file = absl::GetFlag(FLAGS_jwt_secret_file);
  options.jwks_file = absl::GetFlag(FLAGS_jwks_file);
  options.jwks_url = absl::GetFlag(FLAGS_jwks_url);
  options.jwks_ca_file = absl::GetFlag(FLAGS_jwks_ca_file);
  options.jwt_issuer = absl::GetFlag(FLAGS_jwt_issuer);
  options.jwt_audience = absl::GetFlag(FLAGS_jwt_audience);
  options.dev_token_issuer = absl::GetFlag(FLAGS_dev_token_issuer);
  options.join_history =
      static_cast<uint32_t>(std::clamp<int64_t>(absl::GetFlag(FLAGS_join_history), 0, 1000));
  absl::StatusOr<edge::AuthMode> auth = edge::ParseAuthMode(absl::GetFlag(FLAGS_auth));
  if (!auth.ok()) {
    fprintf(stderr, "edge: %s\n", std::string(auth.status().message()).c_str());
    return 2;
  }
  options.edge.auth = *auth;
  if (const std::string who = absl::GetFlag(FLAGS_mint_token); !who.empty()) {
    absl::StatusOr<std::string> secret = edge::ReadSecret(options.jwt_secret_file);
    if (!secret.ok()) {
      fprintf(stderr, "edge: --mint_token: %s\n", std::string(secret.status().message()).c_str());
      return 2;
    }
    std::vector<std::string> parts = absl::StrSplit(who, absl::MaxSplits(':', 1));
    edge::User user;
    user.id = parts[0];
    user.name = parts.size() > 1 ? parts[1] : parts[0];
    user.rooms = absl::GetFlag(FLAGS_mint_rooms);
    printf("%s\n", edge::TokenVerifier(*secret, chat::RealClock::Default())
                       .Mint(user, absl::GetFlag(FLAGS_mint_ttl))
                       .c_str());
    return 0;
  }
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
                               {"layer", options.groupsvc.empty() ? "memory" : options.groupsvc},
                               {"metrics_port", absl::StrCat((*server)->metrics_port())},
                               {"max_connections", absl::StrCat((*server)->max_connections())}});

  const char* signal_name = chat::WaitForTerminationSignal();
  const absl::Duration grace = absl::GetFlag(FLAGS_grace);
  chat::LogEvent("draining", {{"signal", signal_name}, {"grace", absl::FormatDuration(grace)}});
  (*server)->Shutdown(grace);
  chat::LogEvent("stopped");
  return 0;
}
