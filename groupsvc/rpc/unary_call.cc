#include "groupsvc/rpc/unary_call.h"

#include <utility>

#include "groupsvc/rpc/wire.h"
#include "shared/grpc_status.h"

namespace groupsvc {

void UnaryCall::Listen(CompletionLoop* loop, const UnaryMethod* method) {
  auto call = std::make_shared<UnaryCall>(loop, method);
  call->context_.AsyncNotifyWhenDone(call->done_.Tag());
  method->request(&call->context_, &call->request_, &call->responder_, loop->cq(),
                  call->arrived_.Tag());
}

UnaryCall::UnaryCall(CompletionLoop* loop, const UnaryMethod* method)
    : Call(loop), method_(method) {}

bool UnaryCall::Claim() {
  absl::MutexLock lock(&mu_);
  if (state_ != State::kHandling) return false;
  state_ = State::kReplied;
  return true;
}

void UnaryCall::Reply(const absl::Status& status, const google::protobuf::MessageLite* response) {
  if (!Claim()) return;
  absl::Status result = status;
  if (result.ok() && response != nullptr) result = SerializeWire(*response, &response_);
  if (result.ok()) {
    responder_.Finish(response_, grpc::Status::OK, replied_.Tag());
  } else {
    responder_.FinishWithError(chat::ToGrpcStatus(result), replied_.Tag());
  }
}

void UnaryCall::ReplyRaw(const grpc::Status& status, const grpc::ByteBuffer& response) {
  if (!Claim()) return;
  if (status.ok()) {
    responder_.Finish(response, status, replied_.Tag());
  } else {
    responder_.FinishWithError(status, replied_.Tag());
  }
}

void UnaryCall::OnCancel(std::function<void()> cancel) { on_cancel_ = std::move(cancel); }

void UnaryCall::OnComplete(Op* op, bool ok) {
  if (op == &arrived_) {
    if (!ok) {
      // The server is shutting down: no call came, none will be done.
      done_.Abandon();
      return;
    }
    Listen(loop(), method_);
    {
      absl::MutexLock lock(&mu_);
      state_ = State::kHandling;
    }
    method_->handle(this);
  } else if (op == &done_) {
    std::function<void()> cancel = std::move(on_cancel_);
    if (context_.IsCancelled() && cancel) cancel();
  }
  // replied_: nothing left to do; the call goes when its last operation has.
}

}  // namespace groupsvc
