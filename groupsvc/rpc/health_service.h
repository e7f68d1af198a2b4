// HealthService: grpc.health.v1.Health on groupsvc's completion loops (the
// async API: gRPC's own health service is a callback service, whose threads
// would poll beside ours; see completion_loop.h). Built from the project's
// own copy of health.proto so that reflection (and so grpcurl) describes it.
// "" and "groupsvc.v1.ChannelLayer" are SERVING until SetServing(false), which
// shutdown calls first; other names are NOT_FOUND (Check) or SERVICE_UNKNOWN
// (Watch). Both methods are raw and parse their requests themselves (wire.h),
// so a request that does not parse is INVALID_ARGUMENT.
//
//   HealthService health;
//   builder.RegisterService(health.service());
//   ... health.Listen(&loop);
//   health.SetServing(false);  // on SIGTERM
//
// Thread-safe. Each Watch is a Call that holds itself while it writes; the
// service keeps weak references to them.
#ifndef CHAT_GROUPSVC_RPC_HEALTH_SERVICE_H_
#define CHAT_GROUPSVC_RPC_HEALTH_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "groupsvc/rpc/completion_loop.h"
#include "groupsvc/rpc/unary_call.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace groupsvc {

namespace internal {
using AsyncHealth = grpc::health::v1::Health::WithRawMethod_Check<
    grpc::health::v1::Health::WithRawMethod_Watch<grpc::health::v1::Health::Service>>;
}  // namespace internal

class HealthService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;
  class Watch;

  HealthService();
  grpc::Service* service() { return &service_; }
  // Posts the first Check and Watch requests on `loop` (after the server started).
  void Listen(CompletionLoop* loop);
  void SetServing(bool serving);
  // Ends every Watch, e.g. before the server shuts down.
  void Shutdown();

 private:
  static bool Known(const std::string& service);
  void HandleCheck(UnaryCall* call);
  // Registers a new Watch; its first status, and whether to end it at once.
  ServingStatus AddWatch(const std::shared_ptr<Watch>& watch, bool* shut_down);
  void ListenWatch(CompletionLoop* loop);

  internal::AsyncHealth service_;
  UnaryMethod check_;
  absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = true;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::weak_ptr<Watch>> watches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_RPC_HEALTH_SERVICE_H_
