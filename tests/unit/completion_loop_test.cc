// CompletionLoop, Op and Ticker (groupsvc/rpc/completion_loop.h) on a real
// completion queue of a real (portless) gRPC server.
#include "groupsvc/rpc/completion_loop.h"

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace groupsvc {
namespace {

class LoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    loop_ = std::make_unique<CompletionLoop>(builder.AddCompletionQueue());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    loop_->Start();
  }
  void TearDown() override {
    server_->Shutdown();
    loop_->Shutdown(absl::Seconds(2));
  }

  std::unique_ptr<CompletionLoop> loop_;
  std::unique_ptr<grpc::Server> server_;
};

// Records what happens to it, in order, for the test to read.
class Recorder final : public Call {
 public:
  explicit Recorder(CompletionLoop* loop) : Call(loop) {}
  void OnComplete(Op*, bool ok) override { Add(ok ? "complete" : "cancelled"); }
  void OnRoundEnd() override { Add("round_end"); }
  void Add(const std::string& what) {
    absl::MutexLock lock(&mu_);
    events_.push_back(what);
  }
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> events_;
};

TEST_F(LoopTest, TickerTicksOnTheLoopUntilStopped) {
  std::atomic<int> ticks{0};
  std::atomic<bool> off_loop{false};
  const std::thread::id test_thread = std::this_thread::get_id();
  auto ticker = Ticker::Start(loop_.get(), absl::Milliseconds(5), [&] {
    if (std::this_thread::get_id() == test_thread) off_loop = true;
    ++ticks;
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (ticks < 5 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_GE(ticks.load(), 5);
  ticker->Stop();
  const int stopped_at = ticks;
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_LE(ticks.load(), stopped_at + 1);  // One may have been running.
  EXPECT_FALSE(off_loop);
}

TEST_F(LoopTest, WorkDeferredInARoundRunsOnceAfterIt) {
  auto recorder = std::make_shared<Recorder>(loop_.get());
  absl::Notification ticked;
  auto ticker = Ticker::Start(loop_.get(), absl::Milliseconds(1), [&] {
    if (ticked.HasBeenNotified()) return;
    CompletionLoop::AtRoundEnd(recorder);
    CompletionLoop::AtRoundEnd(recorder);  // Asked twice: runs once.
    recorder->Add("tick");
    ticked.Notify();
  });
  ASSERT_TRUE(ticked.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ticker->Stop();
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (recorder->events().size() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(recorder->events(), (std::vector<std::string>{"tick", "round_end"}));
}

TEST_F(LoopTest, WorkDeferredOffTheLoopRunsAtOnce) {
  auto recorder = std::make_shared<Recorder>(loop_.get());
  CompletionLoop::AtRoundEnd(recorder);
  EXPECT_EQ(recorder->events(), (std::vector<std::string>{"round_end"}));
}

TEST_F(LoopTest, AnOperationHoldsItsCallUntilItCompletes) {
  auto recorder = std::make_shared<Recorder>(loop_.get());
  std::weak_ptr<Recorder> weak = recorder;
  Op alarm_op(recorder.get());
  grpc::Alarm alarm;
  alarm.Set(loop_->cq(), absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)), alarm_op.Tag());
  recorder.reset();
  EXPECT_FALSE(weak.expired());  // Held by the alarm's operation.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!weak.expired() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_TRUE(weak.expired());  // Completed, then let go.
}

TEST_F(LoopTest, ShutdownWaitsForTheLoopsCallsToGo) {
  auto held = std::make_shared<Recorder>(loop_.get());
  server_->Shutdown();
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(100));
    held.reset();
  });
  const absl::Time start = absl::Now();
  loop_->Shutdown(absl::Seconds(5));
  const absl::Duration took = absl::Now() - start;
  releaser.join();
  EXPECT_GE(took, absl::Milliseconds(90));
  EXPECT_LT(took, absl::Seconds(4));
}

}  // namespace
}  // namespace groupsvc
