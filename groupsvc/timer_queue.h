// TimerQueue: runs callbacks at given times on one background thread, for
// Receive timeouts and the periodic sweep (gRPC's callback API has no timers
// that outlive a reactor safely).
//
//   TimerQueue timers;
//   uint64_t id = timers.Schedule(absl::Now() + absl::Seconds(1), [] { ... });
//   timers.Cancel(id);
//
// Thread-safe. Callbacks run without the queue's lock and must not block long.
#ifndef CHAT_GROUPSVC_TIMER_QUEUE_H_
#define CHAT_GROUPSVC_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupsvc {

class TimerQueue {
 public:
  TimerQueue();
  ~TimerQueue();  // Drops pending callbacks without running them.
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  uint64_t Schedule(absl::Time when, std::function<void()> callback);
  // True if the callback had not started and now never will.
  bool Cancel(uint64_t id);

 private:
  void Run();

  absl::Mutex mu_;
  // Ordered by (time, id) so that equal times run in scheduling order.
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> pending_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_TIMER_QUEUE_H_
