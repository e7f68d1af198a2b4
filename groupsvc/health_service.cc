#include "groupsvc/health_service.h"

#include <algorithm>
#include <optional>

#include "groupsvc/self_owned.h"
#include "groupsvc/wire.h"
#include "shared/grpc_status.h"

namespace groupsvc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch call: writes the status now and after every change, one write in
// flight, only the latest status pending.
class HealthService::Watcher : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                               public SelfOwned<HealthService::Watcher> {
 public:
  Watcher(HealthService* service, bool known) : service_(service), known_(known) {}

  void Update(ServingStatus status) {
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      pending_ = known_ ? status : HealthCheckResponse::SERVICE_UNKNOWN;
    }
    Pump();
  }
  void End() {
    {
      absl::MutexLock lock(&mu_);
      ending_ = true;
    }
    Pump();
  }

 private:
  void Pump() {
    bool write = false, finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || done_) return;
      if (pending_.has_value()) {
        current_.set_status(*pending_);
        pending_.reset();
        writing_ = write = true;
      } else if (ending_) {
        done_ = finish = true;
      }
    }
    if (write) {
      // current_ belongs to this write until OnWriteDone.
      if (!SerializeWire(current_, &current_raw_).ok()) {
        OnWriteDone(false);
        return;
      }
      StartWrite(&current_raw_);
    }
    if (finish) Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) ending_ = true;
    }
    Pump();
  }
  void OnCancel() override { End(); }
  void OnDone() override {
    service_->Forget(this);
    Release();
  }

  HealthService* const service_;
  const bool known_;
  HealthCheckResponse current_;
  grpc::ByteBuffer current_raw_;
  absl::Mutex mu_;
  std::optional<ServingStatus> pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

HealthService::~HealthService() { Shutdown(); }

bool HealthService::Known(const std::string& service) {
  return service.empty() || service == "groupsvc.v1.ChannelLayer";
}

void HealthService::SetServing(bool serving) {
  std::vector<std::shared_ptr<Watcher>> watchers;
  {
    absl::MutexLock lock(&mu_);
    serving_ = serving;
    watchers = watchers_;
  }
  for (auto& w : watchers) {
    w->Update(serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  }
}

void HealthService::Shutdown() {
  std::vector<std::shared_ptr<Watcher>> watchers;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    watchers = watchers_;
  }
  for (auto& w : watchers) w->End();
}

void HealthService::Forget(Watcher* watcher) {
  std::shared_ptr<Watcher> keep;  // Destroyed after the lock is released.
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(watchers_.begin(), watchers_.end(),
                         [&](const auto& w) { return w.get() == watcher; });
  if (it != watchers_.end()) {
    keep = std::move(*it);
    watchers_.erase(it);
  }
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const grpc::ByteBuffer* raw_request,
                                               grpc::ByteBuffer* raw_response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  HealthCheckRequest request;
  if (absl::Status s = ParseWire(*raw_request, &request); !s.ok()) {
    reactor->Finish(chat::ToGrpcStatus(s));
    return reactor;
  }
  if (!Known(request.service())) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service \"" + request.service() + "\""));
    return reactor;
  }
  HealthCheckResponse response;
  {
    absl::MutexLock lock(&mu_);
    response.set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  }
  reactor->Finish(chat::ToGrpcStatus(SerializeWire(response, raw_response)));
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* HealthService::Watch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  HealthCheckRequest request;
  if (absl::Status s = ParseWire(*raw_request, &request); !s.ok()) {
    return Refused<grpc::ServerWriteReactor<grpc::ByteBuffer>>::Start(chat::ToGrpcStatus(s));
  }
  auto watcher = Watcher::Make(this, Known(request.service()));
  bool serving, shut_down;
  {
    absl::MutexLock lock(&mu_);
    watchers_.push_back(watcher);
    serving = serving_;
    shut_down = shut_down_;
  }
  watcher->Update(serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  if (shut_down) watcher->End();
  return watcher.get();
}

}  // namespace groupsvc
