// GroupServer: groupsvc wired up: the gRPC server with the ChannelLayer and
// Health services and reflection, the periodic sweep, and the metrics endpoint.
// main() and the contract tests both start it this way.
//
//   absl::StatusOr<std::unique_ptr<GroupServer>> server = GroupServer::Start(options);
//   ... (*server)->port() ...
//   (*server)->Shutdown(absl::Seconds(10));
#ifndef CHAT_GROUPSVC_SERVER_H_
#define CHAT_GROUPSVC_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "groupsvc/group_registry.h"
#include "groupsvc/group_service.h"
#include "groupsvc/health_service.h"
#include "groupsvc/metrics.h"
#include "groupsvc/timer_queue.h"
#include "shared/clock.h"

namespace groupsvc {

struct ServerOptions {
  // HOST:PORT for gRPC; port 0 picks a free one (see port()).
  std::string listen = "0.0.0.0:50051";
  // HOST:PORT for Prometheus' /metrics; empty: none.
  std::string metrics_listen;
  RegistryOptions registry;
  AttachOptions attach;
  absl::Duration sweep_interval = absl::Seconds(1);
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
  GroupRegistry& registry() { return registry_; }

  // Graceful stop: health turns NOT_SERVING, new streams are refused, attached
  // edges are told to go and their streams end once flushed, in-flight calls
  // finish; whatever is left at `grace` is cancelled. Idempotent.
  void Shutdown(absl::Duration grace);
  // Blocks until the server has shut down.
  void Wait();

 private:
  GroupServer(ServerOptions options, const chat::Clock* clock);
  void ScheduleSweep();

  const ServerOptions options_;
  const chat::Clock* const clock_;
  GroupRegistry registry_;
  TimerQueue timers_;
  GroupService service_;
  HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<RegistryCollector> collector_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::atomic<bool> shut_down_{false};
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SERVER_H_
