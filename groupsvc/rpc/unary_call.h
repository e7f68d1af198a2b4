// UnaryCall: the state machine of one unary RPC on a CompletionLoop, for any
// raw (grpc::ByteBuffer) unary method of any service: ChannelLayer's and
// Health's Check alike.
//
// States: kListening (its request posted; on arrival a fresh UnaryCall
// listens in its place and the method's handler runs), kHandling (the
// handler, or what it started: a forwarded call, a Receive that waits),
// kReplied (Finish in flight). Reply() answers exactly once, from any
// thread; a handler that answers later registers what to do if the caller
// goes first (OnCancel). AsyncNotifyWhenDone's operation tells that.
//
//   UnaryMethod send{[svc](auto... a) { svc->RequestSend(a...); },
//                    [this](UnaryCall* call) { HandleSend(call); }};
//   UnaryCall::Listen(&loop, &send);
//
// Threading: OnComplete on the loop's thread; Reply and OnCancel from any.
#ifndef CHAT_GROUPSVC_RPC_UNARY_CALL_H_
#define CHAT_GROUPSVC_RPC_UNARY_CALL_H_

#include <google/protobuf/message_lite.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_unary_call.h>

#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "groupsvc/rpc/completion_loop.h"

namespace groupsvc {

class UnaryCall;
using RawResponder = grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>;

// One unary method: how to post a request for it, and its handler.
struct UnaryMethod {
  std::function<void(grpc::ServerContext*, grpc::ByteBuffer*, RawResponder*,
                     grpc::ServerCompletionQueue*, void*)>
      request;
  std::function<void(UnaryCall*)> handle;
};

class UnaryCall final : public Call {
 public:
  // Posts a request for `method` on `loop`; both must outlive the call.
  static void Listen(CompletionLoop* loop, const UnaryMethod* method);
  UnaryCall(CompletionLoop* loop, const UnaryMethod* method);

  grpc::ServerContext& context() { return context_; }
  const grpc::ByteBuffer& request() const { return request_; }

  // The answer: `response` (serialized) if `status` is OK, else the error.
  void Reply(const absl::Status& status, const google::protobuf::MessageLite* response = nullptr);
  // An answer already in wire form (a forwarded call's).
  void ReplyRaw(const grpc::Status& status, const grpc::ByteBuffer& response);
  // Runs `cancel` if the caller cancels (or its deadline passes) before the
  // call is done. Call from the handler, on the loop's thread.
  void OnCancel(std::function<void()> cancel);

  void OnComplete(Op* op, bool ok) override;

 private:
  enum class State { kListening, kHandling, kReplied };
  // True once: the caller of this wins the right to reply.
  bool Claim();

  const UnaryMethod* const method_;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  RawResponder responder_{&context_};
  Op arrived_{this};
  Op replied_{this};
  Op done_{this};
  std::function<void()> on_cancel_;  // Loop thread only.

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kListening;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_RPC_UNARY_CALL_H_
