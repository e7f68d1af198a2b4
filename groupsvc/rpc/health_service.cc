#include "groupsvc/rpc/health_service.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "groupsvc/rpc/wire.h"
#include "shared/grpc_status.h"

namespace groupsvc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch call: writes the status now and after every change, one write in
// flight, only the latest status pending.
class HealthService::Watch final : public Call {
 public:
  Watch(CompletionLoop* loop, HealthService* service) : Call(loop), service_(service) {}

  void Listen() {
    context_.AsyncNotifyWhenDone(done_.Tag());
    service_->service_.RequestWatch(&context_, &request_, &writer_, loop()->cq(), loop()->cq(),
                                    arrived_.Tag());
  }

  void Update(ServingStatus status) {
    {
      absl::MutexLock lock(&mu_);
      if (state_ != State::kWatching) return;
      pending_ = known_ ? status : HealthCheckResponse::SERVICE_UNKNOWN;
    }
    Pump();
  }

  void End(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (state_ != State::kWatching) return;
      state_ = State::kEnding;
      end_status_ = std::move(status);
    }
    Pump();
  }

  void OnComplete(Op* op, bool ok) override {
    if (op == &arrived_) {
      if (!ok) {
        done_.Abandon();
        return;
      }
      service_->ListenWatch(loop());
      HealthCheckRequest request;
      const absl::Status parsed = ParseWire(request_, &request);
      known_ = parsed.ok() && Known(request.service());
      {
        absl::MutexLock lock(&mu_);
        state_ = State::kWatching;
      }
      if (!parsed.ok()) {
        End(chat::ToGrpcStatus(parsed));
        return;
      }
      bool shut_down = false;
      ServingStatus first =
          service_->AddWatch(std::static_pointer_cast<Watch>(shared_from_this()), &shut_down);
      Update(first);
      if (shut_down) End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    } else if (op == &wrote_) {
      {
        absl::MutexLock lock(&mu_);
        writing_ = false;
      }
      if (!ok) End(grpc::Status(grpc::StatusCode::CANCELLED, "watch broken"));
      Pump();
    } else if (op == &done_) {
      if (context_.IsCancelled()) End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    }
  }

 private:
  enum class State { kListening, kWatching, kEnding, kFinished };

  void Pump() {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || state_ == State::kFinished) return;
      // A status still pending goes out before the end.
      if (pending_.has_value()) {
        HealthCheckResponse response;
        response.set_status(*pending_);
        pending_.reset();
        if (SerializeWire(response, &current_).ok()) {
          writing_ = true;
          writer_.Write(current_, wrote_.Tag());
          return;
        }
        state_ = State::kEnding;
        end_status_ = grpc::Status(grpc::StatusCode::INTERNAL, "cannot serialize the status");
      }
      if (state_ != State::kEnding) return;
      state_ = State::kFinished;
      finish = end_status_;
    }
    writer_.Finish(*finish, finished_.Tag());
  }

  HealthService* const service_;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_{&context_};
  bool known_ = false;  // Set before the watch is registered; read-only after.
  Op arrived_{this};
  Op wrote_{this};
  Op finished_{this};
  Op done_{this};

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kListening;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ByteBuffer current_ ABSL_GUARDED_BY(mu_);  // Owned by the write in flight.
  std::optional<ServingStatus> pending_ ABSL_GUARDED_BY(mu_);
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
};

HealthService::HealthService() {
  check_.request = [this](grpc::ServerContext* context, grpc::ByteBuffer* request,
                          RawResponder* responder, grpc::ServerCompletionQueue* cq, void* tag) {
    service_.RequestCheck(context, request, responder, cq, cq, tag);
  };
  check_.handle = [this](UnaryCall* call) { HandleCheck(call); };
}

void HealthService::Listen(CompletionLoop* loop) {
  UnaryCall::Listen(loop, &check_);
  ListenWatch(loop);
}

void HealthService::ListenWatch(CompletionLoop* loop) {
  std::make_shared<Watch>(loop, this)->Listen();
}

bool HealthService::Known(const std::string& service) {
  return service.empty() || service == "groupsvc.v1.ChannelLayer";
}

HealthService::ServingStatus HealthService::AddWatch(const std::shared_ptr<Watch>& watch,
                                                     bool* shut_down) {
  absl::MutexLock lock(&mu_);
  watches_.erase(std::remove_if(watches_.begin(), watches_.end(),
                                [](const std::weak_ptr<Watch>& w) { return w.expired(); }),
                 watches_.end());
  watches_.push_back(watch);
  *shut_down = shut_down_;
  return serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(bool serving) {
  std::vector<std::shared_ptr<Watch>> live;
  {
    absl::MutexLock lock(&mu_);
    serving_ = serving;
    for (const auto& w : watches_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& w : live) {
    w->Update(serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  }
}

void HealthService::Shutdown() {
  std::vector<std::shared_ptr<Watch>> live;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (const auto& w : watches_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& w : live) w->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
}

void HealthService::HandleCheck(UnaryCall* call) {
  HealthCheckRequest request;
  if (absl::Status s = ParseWire(call->request(), &request); !s.ok()) return call->Reply(s);
  if (!Known(request.service())) {
    return call->Reply(absl::NotFoundError("unknown service \"" + request.service() + "\""));
  }
  HealthCheckResponse response;
  {
    absl::MutexLock lock(&mu_);
    response.set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  }
  call->Reply(absl::OkStatus(), &response);
}

}  // namespace groupsvc
