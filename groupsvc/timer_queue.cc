#include "groupsvc/timer_queue.h"

#include "absl/time/clock.h"

namespace groupsvc {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

uint64_t TimerQueue::Schedule(absl::Time when, std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  pending_.emplace(std::make_pair(when, id), std::move(callback));
  when_.emplace(id, when);
  return id;
}

bool TimerQueue::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = when_.find(id);
  if (it == when_.end()) return false;
  pending_.erase({it->second, id});
  when_.erase(it);
  return true;
}

void TimerQueue::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time now = absl::Now();
    if (!pending_.empty() && pending_.begin()->first.first <= now) {
      auto node = pending_.extract(pending_.begin());
      when_.erase(node.key().second);
      mu_.Unlock();
      node.mapped()();
      mu_.Lock();
      continue;
    }
    const absl::Time wake =
        pending_.empty() ? now + absl::Seconds(1) : pending_.begin()->first.first;
    // Wakes early when a sooner timer is scheduled or on shutdown.
    auto changed = [this, wake]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stopping_ || (!pending_.empty() && pending_.begin()->first.first < wake);
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
  }
}

}  // namespace groupsvc
