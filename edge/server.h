// EdgeServer: an edge process wired up: the I/O threads, the listener, the
// layer (GrpcLayer when a groupsvc address is given, MemoryLayer otherwise),
// the router with the tutorial's consumers, and metrics. main() and the tests
// start it this way.
//
//   auto edge = EdgeServer::Start(options);
//   ... (*edge)->port() ...
//   (*edge)->Shutdown(absl::Seconds(10));
#ifndef CHAT_EDGE_SERVER_H_
#define CHAT_EDGE_SERVER_H_

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "edge/channels/layer.h"
#include "edge/channels/router.h"
#include "edge/link/grpc_layer.h"
#include "edge/net/edge_context.h"
#include "edge/net/io_pool.h"
#include "edge/net/listener.h"
#include "edge/net/metrics.h"

namespace edge {

// The real clock, for the token checks.
// An HS256 secret from --jwt_secret_file: at least 32 bytes, trailing newline dropped.
absl::StatusOr<std::string> ReadSecret(const std::string& path);

struct EdgeServerOptions {
  std::string listen = "0.0.0.0:8000";  // Port 0 picks a free one.
  // /metrics (and /healthz) only; empty: no metrics port.
  std::string metrics_listen;
  std::string groupsvc;  // Empty: the in-process layer.
  // TLS (and the client certificate) of the link to groupsvc; see GrpcLayer.
  GrpcTlsOptions groupsvc_tls;
  // Defaults to the host name and a random suffix, unique per process.
  std::string edge_id;
  // I/O threads (edge/net/io_pool.h: one io_context each; a connection
  // stays on one).
  int threads = 1;
  // Client TCP connections in all (lowered to fit the open-file limit, with
  // descriptors kept back for groupsvc, the metrics port and logs) and per
  // client address.
  size_t max_connections = 10000;
  size_t max_connections_per_ip = 1000;
  // The HS256 secret of the tokens (the whole file, trailing newline
  // dropped); empty: no tokens are verified. --auth=required needs one.
  std::string jwt_secret_file;
  // A JWKS file of the identity provider's public keys (RS/PS/ES/EdDSA
  // tokens), read again when it changes; and the `iss` and `aud` tokens must
  // carry, when set.
  std::string jwks_file;
  // Or fetched over HTTPS from the provider (the CA: --jwks_ca_file, else the system's).
  std::string jwks_url;
  std::string jwks_ca_file;
  std::string jwt_issuer;
  std::string jwt_audience;
  // POST /auth/token mints a short-lived token for a display name (the
  // lobby asks for one); for the local run only: anyone who reaches the page
  // may name themselves. Needs jwt_secret_file.
  bool dev_token_issuer = false;
  // The room's latest messages a new chat.v2 client gets (and one that
  // could not recover); 0: none.
  uint32_t join_history = 20;
  EdgeOptions edge;
};

class EdgeServer {
 public:
  static absl::StatusOr<std::unique_ptr<EdgeServer>> Start(EdgeServerOptions options);
  ~EdgeServer();

  int port() const { return listener_->port(); }
  // 0 without a metrics port.
  int metrics_port() const { return metrics_listener_ ? metrics_listener_->port() : 0; }
  Layer& layer() { return *context_->layer; }
  // After the open-file limit.
  size_t max_connections() const { return context_->admission->limits().max_connections; }
  const std::string& edge_id() const { return options_.edge_id; }

  // Stops accepting, closes every WebSocket with 1001 (their groups are left),
  // waits for them up to `grace`, then stops. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  explicit EdgeServer(EdgeServerOptions options);
  // Every quarter of the write timeout, closes the sessions whose write is stuck.
  void ScheduleWriteCheck();

  EdgeServerOptions options_;
  // Shared with every session (see edge_context.h), so it is declared, and
  // destroyed, independently of the io_context's handlers.
  std::shared_ptr<EdgeContext> context_;
  // The layer holds it too (deliveries); Shutdown destroys its handlers.
  std::shared_ptr<IoPool> pool_;
  // On loop 0; destroyed at shutdown, before the loops.
  std::optional<boost::asio::steady_timer> write_check_;
  std::shared_ptr<Listener> listener_;
  std::shared_ptr<Listener> metrics_listener_;
  bool stopped_ = false;
};

}  // namespace edge

#endif  // CHAT_EDGE_SERVER_H_
