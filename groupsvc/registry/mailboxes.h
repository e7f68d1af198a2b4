// Mailboxes: the queues of channels no attached edge owns (Django Channels'
// send/receive), sharded by channel name, each shard under its own mutex.
//
// A queue holds at most its capacity (the first matching override, else
// `capacity`) of events, each for `expiry`; all queues together at most
// `max_queued_bytes`, and each caller's copies at most its QueueQuota. A
// Receive that finds nothing may leave a Receiver, which the next event sent
// to the channel goes to instead of the queue.
//
// Thread-safe; receivers are called without a lock held.
#ifndef CHAT_GROUPSVC_REGISTRY_MAILBOXES_H_
#define CHAT_GROUPSVC_REGISTRY_MAILBOXES_H_

#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "groupsvc/registry/event.h"
#include "groupsvc/registry/queue_quota.h"

namespace groupsvc {

// Waits for the next event of one channel (a pending Receive).
class Receiver {
 public:
  virtual ~Receiver() = default;
  // Called at most once, without registry locks held.
  virtual void OnEvent(EventPtr event) = 0;
};

struct MailboxLimits {
  size_t capacity = 100;
  // (glob pattern, capacity); the first pattern that matches a channel wins.
  std::vector<std::pair<std::string, size_t>> capacity_overrides;
  absl::Duration expiry = absl::Seconds(60);
  size_t max_queued_bytes = 256 << 20;
  size_t max_receivers_per_channel = 16;
};

// Counts of copies dropped, by reason, kept by the registry.
class DropCounts {
 public:
  void Add(DropReason reason, uint64_t n) {
    n_[static_cast<size_t>(reason)].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Get(size_t reason) const { return n_[reason].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kDropReasonCount> n_{};
};

class Mailboxes {
 public:
  // `drops` must outlive this.
  Mailboxes(MailboxLimits limits, DropCounts* drops) : limits_(std::move(limits)), drops_(drops) {}
  Mailboxes(const Mailboxes&) = delete;
  Mailboxes& operator=(const Mailboxes&) = delete;

  // Queues the event, or hands it to a waiting receiver. RESOURCE_EXHAUSTED
  // when the channel, the layer or `quota` (charged for the copy, if set) is full.
  absl::Status Put(absl::string_view channel, const EventPtr& event, absl::Time now,
                   const std::shared_ptr<QueueQuota>& quota);
  // The next queued event; nullptr when there is none, after registering
  // `receiver` if set.
  absl::StatusOr<EventPtr> Take(absl::string_view channel, absl::Time now,
                                std::shared_ptr<Receiver> receiver);
  // True if the receiver was still waiting (it will not be called).
  bool Cancel(absl::string_view channel, const Receiver* receiver);
  // Drops every queued event; waiting receivers stay.
  void Clear();
  // Drops expired events and empty queues.
  void Sweep(absl::Time now);

  uint64_t channels() const;
  uint64_t queued_events() const { return queued_events_.load(std::memory_order_relaxed); }

 private:
  struct QueuedEvent {
    EventPtr event;
    absl::Time expires;
    std::shared_ptr<QueueQuota> quota;  // Charged for this copy; may be null.
  };
  struct Queue {
    std::deque<QueuedEvent> events;
    std::deque<std::shared_ptr<Receiver>> receivers;
  };
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, Queue> queues ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(absl::string_view channel) const;
  size_t CapacityFor(absl::string_view channel) const;
  // Accounts for a copy that leaves a queue (not the queue itself).
  void Unqueued(const QueuedEvent& q);
  void DropExpired(Queue& queue, absl::Time now);

  const MailboxLimits limits_;
  DropCounts* const drops_;
  mutable std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> queued_bytes_{0};
  std::atomic<uint64_t> queued_events_{0};
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_MAILBOXES_H_
