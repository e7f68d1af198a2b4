// CompletionLoop: one gRPC completion queue and the one thread that polls it;
// every call groupsvc serves (and every call it makes to another shard) runs
// its state machine on such a loop. Call and Op: the one lifetime idiom of
// groupsvc's RPC layer.
//
// Why one thread: in gRPC 1.51 every thread that polls takes the transport's
// events in turn, so a second poller (a callback service's, a sync service's
// on a polling queue) costs a hand-off and a context switch per event. With
// one loop, the thread that reads an edge's command is the one that applies
// it and starts the writes it causes (bench/README.md, "One polling thread").
//
// A Call is the state machine of one RPC (or one helper, such as a periodic
// timer). Each operation it starts has its own Op, whose address is the
// completion-queue tag, and at most one operation per Op is in flight (one
// read, one write, one finish...). Op::Tag() makes the Op hold the call
// (a shared_ptr) until the operation completes, so a call lives exactly as
// long as one of its operations is pending or someone else (the registry, a
// helper) holds it: no `delete this`, no counters.
//
// Rounds: each completion is one round. Work deferred with AtRoundEnd (an
// Attach stream's next write) runs once, after the round, on the thread of
// the loop whose round it is (which may be another loop's stream: its state
// is under its own lock), so that all the deliveries one command causes leave
// in one message per stream.
//
//   CompletionLoop loop(builder.AddCompletionQueue());
//   ... server = builder.BuildAndStart(); ... loop.Start();
//   loop.Shutdown();  // after the server's Shutdown: drains the queue, joins
//
// Threading: Start, Shutdown and the destructor from one owner thread. Calls'
// OnComplete run on the loop's thread; operations may be started from any
// thread (gRPC allows it), under the call's own lock where it has state.
#ifndef CHAT_GROUPSVC_RPC_COMPLETION_LOOP_H_
#define CHAT_GROUPSVC_RPC_COMPLETION_LOOP_H_

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupsvc {

class CompletionLoop;
class Op;

class Call : public std::enable_shared_from_this<Call> {
 public:
  // Counted on `loop`, whose Shutdown waits for every call to go.
  explicit Call(CompletionLoop* loop);
  virtual ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  CompletionLoop* loop() const { return loop_; }

  // `op` (one of this call's) completed; `ok` as gRPC reports it.
  virtual void OnComplete(Op* op, bool ok) = 0;
  // Work deferred with CompletionLoop::AtRoundEnd.
  virtual void OnRoundEnd() {}

 private:
  CompletionLoop* const loop_;
};

// One kind of operation of a call; at most one of it in flight.
class Op {
 public:
  explicit Op(Call* call) : call_(call) {}
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // The tag of the operation about to start: the call lives until it completes.
  void* Tag() {
    hold_ = call_->shared_from_this();
    return this;
  }
  // For an operation that will never complete (AsyncNotifyWhenDone's tag of a
  // call that never started): lets the call go.
  void Abandon() { hold_.reset(); }

 private:
  friend class CompletionLoop;
  Call* const call_;
  std::shared_ptr<Call> hold_;
};

class CompletionLoop {
 public:
  explicit CompletionLoop(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  ~CompletionLoop();  // Shutdown()
  CompletionLoop(const CompletionLoop&) = delete;
  CompletionLoop& operator=(const CompletionLoop&) = delete;

  grpc::ServerCompletionQueue* cq() { return cq_.get(); }
  void Start();
  // Once the server has been shut down: waits (up to `calls_grace`) until
  // every Call of this loop is gone, so that none starts an operation on a
  // queue that is shut down (gRPC aborts on that), then shuts the queue down,
  // handles what is left on it and joins the thread. Idempotent.
  void Shutdown(absl::Duration calls_grace = absl::Seconds(5));

  // On a loop's thread: `call->OnRoundEnd()` after the current round (once,
  // however often it is asked). Elsewhere: at once.
  static void AtRoundEnd(std::shared_ptr<Call> call);

 private:
  friend class Call;
  void Run();

  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread thread_;
  bool shut_down_ = false;
  absl::Mutex mu_;
  size_t live_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs `tick` on `loop` every `period` until Stop(); a Call of its own (one
// grpc::Alarm, re-armed after each tick).
class Ticker final : public Call {
 public:
  static std::shared_ptr<Ticker> Start(CompletionLoop* loop, absl::Duration period,
                                       std::function<void()> tick);
  Ticker(CompletionLoop* loop, absl::Duration period, std::function<void()> tick);
  // No tick is scheduled after this returns; one that the loop has already
  // begun may still run. Any thread.
  void Stop();

  void OnComplete(Op* op, bool ok) override;

 private:
  void Arm();

  const absl::Duration period_;
  const std::function<void()> tick_;
  Op fired_{this};
  absl::Mutex mu_;
  grpc::Alarm alarm_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_RPC_COMPLETION_LOOP_H_
