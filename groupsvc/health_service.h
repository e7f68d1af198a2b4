// HealthService: grpc.health.v1.Health, built from the project's own copy of
// health.proto so that server reflection (and so grpcurl) can describe it.
// "" and "groupsvc.v1.ChannelLayer" are SERVING until SetServing(false), which
// shutdown calls first; other names are NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch).
// Both methods are raw and parse their requests themselves (see wire.h), so a
// request that does not parse is INVALID_ARGUMENT, not gRPC 1.51's UNIMPLEMENTED.
//
//   HealthService health;
//   builder.RegisterService(&health);
//   health.SetServing(false);  // on SIGTERM
//
// Thread-safe.
#ifndef CHAT_GROUPSVC_HEALTH_SERVICE_H_
#define CHAT_GROUPSVC_HEALTH_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace groupsvc {

namespace internal {
using RawHealth = grpc::health::v1::Health::WithRawCallbackMethod_Check<
    grpc::health::v1::Health::WithRawCallbackMethod_Watch<grpc::health::v1::Health::Service>>;
}  // namespace internal

class HealthService final : public internal::RawHealth {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;
  class Watcher;

  ~HealthService() override;
  void SetServing(bool serving);
  // Ends every Watch, e.g. before the server shuts down.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request) override;

 private:
  static bool Known(const std::string& service);
  void Forget(Watcher* watcher);

  absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = true;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_HEALTH_SERVICE_H_
