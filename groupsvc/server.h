// GroupServer: groupsvc wired up: the gRPC server with the ChannelLayer and
// Health services (gRPC's async API, on `rpc_threads` completion loops, see
// rpc/completion_loop.h) and reflection, the periodic sweep, and the metrics
// endpoint. main() and the contract tests both start it this way.
//
// Security (see docs/security.md): with tls.cert_file/key_file the port
// speaks TLS only, its certificate reloaded when the files change; with
// tls.client_ca_file the server asks clients for a certificate (verified
// against that CA when presented, but not required at the TLS layer, so that
// grpcurl with a token can connect) and Attach requires one whose DNS names
// admit the announced edge id; with api.tokens_file the unary API needs
// bearer tokens (ApiGuard). What is left open is logged at start, one line
// each. health_listen adds a plaintext port for probes that cannot speak TLS
// (kubelet's gRPC probes): another port of the same server (so no thread of
// its own polls), where the ChannelLayer answers UNIMPLEMENTED when the main
// port speaks TLS. Without TLS both ports are plaintext and alike.
//
//   absl::StatusOr<std::unique_ptr<GroupServer>> server = GroupServer::Start(options);
//   ... (*server)->port() ...
//   (*server)->Shutdown(absl::Seconds(10));
#ifndef CHAT_GROUPSVC_SERVER_H_
#define CHAT_GROUPSVC_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <prometheus/exposer.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "groupsvc/metrics.h"
#include "groupsvc/registry/group_registry.h"
#include "groupsvc/rpc/completion_loop.h"
#include "groupsvc/rpc/group_service.h"
#include "groupsvc/rpc/health_service.h"
#include "groupsvc/security/api_guard.h"
#include "groupsvc/shards/forwarder.h"
#include "groupsvc/shards/shard_map.h"
#include "shared/clock.h"

namespace groupsvc {

struct TlsOptions {
  // PEM files of the server's certificate chain and key; both or neither.
  // Neither: plaintext (logged as a warning).
  std::string cert_file;
  std::string key_file;
  // PEM CA bundle that signs edges' client certificates; needs cert_file.
  // Set: Attach requires a client certificate that names the edge id.
  std::string client_ca_file;
  // How often gRPC looks at the files for a new version (at least 1 s).
  absl::Duration reload_interval = absl::Seconds(10);
};

struct ServerOptions {
  // HOST:PORT for gRPC; port 0 picks a free one (see port()).
  std::string listen = "0.0.0.0:50051";
  // HOST:PORT of a plaintext port serving only grpc.health.v1; empty: none.
  std::string health_listen;
  // HOST:PORT for Prometheus' /metrics; empty: none.
  std::string metrics_listen;
  RegistryOptions registry;
  AttachOptions attach;
  TlsOptions tls;
  ApiOptions api;
  // This groupsvc's place among the shards (--shards, --shard_index); the
  // default is one shard.
  ShardMap shards;
  // PEM CA bundle that signs the other shards' certificates, for forwarding
  // to them when the shards speak TLS; empty: --tls_client_ca's.
  std::string shard_tls_ca_file;
  absl::Duration sweep_interval = absl::Seconds(1);
  // Completion loops (one polling thread each); a stream stays on the loop
  // that accepted it. 1 is the fastest on a busy server (bench/README.md).
  int rpc_threads = 1;
  // Pings on idle connections, so that a cut network ends an edge's stream
  // (and so its memberships) within keepalive_time + keepalive_timeout.
  absl::Duration keepalive_time = absl::Seconds(10);
  absl::Duration keepalive_timeout = absl::Seconds(5);
};

class GroupServer {
 public:
  // `clock` defaults to the real clock and must outlive the server.
  static absl::StatusOr<std::unique_ptr<GroupServer>> Start(ServerOptions options,
                                                            const chat::Clock* clock = nullptr);
  ~GroupServer();

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  // 0 without health_listen.
  int health_port() const { return health_port_; }
  GroupRegistry& registry() { return registry_; }

  // Graceful stop: health turns NOT_SERVING, new streams are refused, attached
  // edges are told to go and their streams end once flushed, in-flight calls
  // finish; whatever is left at `grace` is cancelled. Idempotent.
  void Shutdown(absl::Duration grace);
  // Blocks until the server has shut down.
  void Wait();

 private:
  // `peer_credentials`: how to reach the other shards; null with one shard.
  GroupServer(ServerOptions options, const chat::Clock* clock, std::unique_ptr<ApiGuard> guard,
              std::shared_ptr<grpc::ChannelCredentials> peer_credentials);
  // The listening port's credentials (TLS from the files, or plaintext).
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials();
  // One line for what is secured, and one warning line for each thing left open.
  void LogSecurity(const std::string& certificate) const;

  const ServerOptions options_;
  const chat::Clock* const clock_;
  GroupRegistry registry_;
  const std::unique_ptr<ApiGuard> guard_;
  // Null with one shard.
  const std::unique_ptr<Forwarder> forwarder_;
  GroupService service_;
  HealthService health_;
  // Declared before server_: destroyed after it (gRPC wants the server gone
  // first), shut down after it (Shutdown).
  std::vector<std::unique_ptr<CompletionLoop>> loops_;
  std::unique_ptr<grpc::Server> server_;
  // The sweep and the presence tick, on the first loop.
  std::vector<std::shared_ptr<Ticker>> tickers_;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> certificates_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<RegistryCollector> collector_;
  int port_ = 0;
  int metrics_port_ = 0;
  int health_port_ = 0;
  std::atomic<bool> shut_down_{false};
  absl::Mutex done_mu_;
  bool done_ ABSL_GUARDED_BY(done_mu_) = false;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SERVER_H_
