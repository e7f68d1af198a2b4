// EdgeContext: what every session of one edge process shares: options, the
// layer, the router, metrics, the admission of connections, and the set of
// live WebSocket sessions (weak references, so that shutdown can close them).
//
// Ownership: every listener and session holds the context by shared_ptr, and
// the context owns the layer, router and metrics; so whatever is destroyed
// first at shutdown (IoPool::DestroyHandlers destroys the handlers that keep
// sessions alive), nothing a session points to has gone before it.
#ifndef CHAT_EDGE_NET_EDGE_CONTEXT_H_
#define CHAT_EDGE_NET_EDGE_CONTEXT_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "edge/auth/token.h"
#include "edge/channels/layer.h"
#include "edge/channels/router.h"
#include "edge/net/admission.h"
#include "edge/net/metrics.h"
#include "edge/net/page.h"
#include "edge/net/recent_refusals.h"
#include "edge/net/session_set.h"

namespace edge {

class WebSocketSession;

struct EdgeOptions {
  // Larger client frames close the connection with 1009.
  size_t max_frame_bytes = 64 << 10;
  // A client whose outgoing queue passes either bound is closed with 1013.
  size_t max_queue_frames = 1024;
  size_t max_queue_bytes = 4 << 20;
  absl::Duration handshake_timeout = absl::Seconds(10);
  // An HTTP request (or the gap before the next one on a kept-alive
  // connection) must arrive whole within this.
  absl::Duration header_timeout = absl::Seconds(10);
  // A frame (or fragmented message) begun must be complete within this; the
  // connection closes with 1008 otherwise (a trickle must not keep it alive).
  absl::Duration frame_timeout = absl::Seconds(10);
  // A write to a client in flight longer than this closes it with 1013 (a
  // reader that stopped reading); the check runs every quarter of it.
  absl::Duration write_timeout = absl::Seconds(5);
  // The kernel's send buffer per WebSocket (SO_SNDBUF; 0 leaves Linux's
  // autotuning, which lets a stalled reader hold megabytes for minutes).
  int socket_send_buffer = 64 << 10;
  // A client silent for half of it is pinged; one silent for all of it (at
  // most one and a half) is dropped.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Origins allowed besides the request's own host: "https://chat.example.com",
  // ".example.com" (any subdomain) or "*".
  std::vector<std::string> allowed_origins;
  // Host names (Host header, no port) WebSocket upgrades may name, as
  // Django's ALLOWED_HOSTS: "chat.example.com", ".example.com" or "*".
  std::vector<std::string> allowed_hosts = {"localhost", "127.0.0.1", "[::1]"};
  bool log_connections = false;
  // A signed-in user's WebSockets at most, across every edge (groupsvc
  // counts them); more are refused with HTTP 429. 0: no cap.
  uint32_t max_connections_per_user = 0;
  // Who may connect (docs/security.md): kOff ignores tokens; kOptional
  // (the default) lets anonymous users in and names those with a valid
  // token; kRequired refuses upgrades without one (401).
  AuthMode auth = AuthMode::kOptional;
};

struct EdgeContext {
  EdgeOptions options;
  std::shared_ptr<Layer> layer;
  std::shared_ptr<Router> router;
  PageHandler pages;  // The app's pages (may be empty).
  std::shared_ptr<EdgeMetrics> metrics;
  std::shared_ptr<Admission> admission;
  // Verifies tokens; null without --jwt_secret_file (then every token is refused).
  std::shared_ptr<const TokenVerifier> verifier;
  // Mints tokens for display names at POST /auth/token (--dev_token_issuer,
  // for the local run); false: that path is 404.
  bool dev_token_issuer = false;
  // Refused upgrades, for a browser to read back (GET /ws/refused).
  std::shared_ptr<RecentRefusals> refusals = std::make_shared<RecentRefusals>();
  SessionSet sessions;
  std::atomic<bool> shutting_down{false};
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_EDGE_CONTEXT_H_
