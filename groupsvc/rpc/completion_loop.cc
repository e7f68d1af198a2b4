#include "groupsvc/rpc/completion_loop.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "shared/log.h"

namespace groupsvc {
namespace {

// The calls waiting for the end of the round this thread is handling; null
// on threads that are not a loop's.
thread_local std::vector<std::shared_ptr<Call>>* round_end = nullptr;

}  // namespace

Call::Call(CompletionLoop* loop) : loop_(loop) {
  absl::MutexLock lock(&loop->mu_);
  ++loop->live_calls_;
}

Call::~Call() {
  absl::MutexLock lock(&loop_->mu_);
  --loop_->live_calls_;
}

CompletionLoop::CompletionLoop(std::unique_ptr<grpc::ServerCompletionQueue> cq)
    : cq_(std::move(cq)) {}

CompletionLoop::~CompletionLoop() { Shutdown(); }

void CompletionLoop::Start() {
  thread_ = std::thread([this] { Run(); });
}

void CompletionLoop::Shutdown(absl::Duration calls_grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (thread_.joinable()) {
    absl::MutexLock lock(&mu_);
    auto gone = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_calls_ == 0; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&gone), calls_grace)) {
      chat::LogEvent("rpc_calls_left", {{"calls", absl::StrCat(live_calls_)}});
    }
  }
  cq_->Shutdown();
  if (thread_.joinable()) {
    thread_.join();
  } else {
    Run();  // Never started: what is on the queue still holds its calls.
  }
}

void CompletionLoop::AtRoundEnd(std::shared_ptr<Call> call) {
  if (round_end == nullptr) {
    call->OnRoundEnd();
    return;
  }
  for (const auto& waiting : *round_end) {
    if (waiting == call) return;
  }
  round_end->push_back(std::move(call));
}

void CompletionLoop::Run() {
  std::vector<std::shared_ptr<Call>> pending;
  round_end = &pending;
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) {
    Op* op = static_cast<Op*>(tag);
    std::shared_ptr<Call> call = std::move(op->hold_);
    call->OnComplete(op, ok);
    // What the round deferred may defer more (a write that completes at
    // once): run until nothing is left.
    while (!pending.empty()) {
      std::vector<std::shared_ptr<Call>> now;
      now.swap(pending);
      for (const auto& c : now) c->OnRoundEnd();
    }
  }
  round_end = nullptr;
}

// --------------------------------------------------------------------- Ticker

std::shared_ptr<Ticker> Ticker::Start(CompletionLoop* loop, absl::Duration period,
                                      std::function<void()> tick) {
  auto ticker = std::make_shared<Ticker>(loop, period, std::move(tick));
  ticker->Arm();
  return ticker;
}

Ticker::Ticker(CompletionLoop* loop, absl::Duration period, std::function<void()> tick)
    : Call(loop), period_(period), tick_(std::move(tick)) {}

void Ticker::Arm() {
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  alarm_.Set(loop()->cq(), absl::ToChronoTime(absl::Now() + period_), fired_.Tag());
}

void Ticker::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  alarm_.Cancel();
}

void Ticker::OnComplete(Op*, bool ok) {
  if (!ok) return;  // Cancelled.
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
  }
  tick_();
  Arm();
}

}  // namespace groupsvc
