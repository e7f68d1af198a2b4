#include "groupsvc/registry/mailboxes.h"

#include <fnmatch.h>

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace groupsvc {

Mailboxes::Shard& Mailboxes::ShardFor(absl::string_view channel) const {
  return shards_[absl::HashOf(channel) % kShards];
}

size_t Mailboxes::CapacityFor(absl::string_view channel) const {
  if (limits_.capacity_overrides.empty()) return limits_.capacity;
  std::string name(channel);
  for (const auto& [pattern, capacity] : limits_.capacity_overrides) {
    if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return capacity;
  }
  return limits_.capacity;
}

void Mailboxes::Unqueued(const QueuedEvent& q) {
  const size_t bytes = q.event->ByteSize();
  queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  if (q.quota != nullptr) q.quota->Refund(bytes);
}

void Mailboxes::DropExpired(Queue& queue, absl::Time now) {
  uint64_t dropped = 0;
  while (!queue.events.empty() && queue.events.front().expires <= now) {
    Unqueued(queue.events.front());
    queue.events.pop_front();
    ++dropped;
  }
  if (dropped > 0) {
    queued_events_.fetch_sub(dropped, std::memory_order_relaxed);
    drops_->Add(DropReason::kExpired, dropped);
  }
}

absl::Status Mailboxes::Put(absl::string_view channel, const EventPtr& event, absl::Time now,
                            const std::shared_ptr<QueueQuota>& quota) {
  std::shared_ptr<Receiver> waiting;
  {
    Shard& shard = ShardFor(channel);
    absl::MutexLock lock(&shard.mu);
    Queue& queue = shard.queues[channel];
    DropExpired(queue, now);
    if (!queue.receivers.empty()) {
      waiting = std::move(queue.receivers.front());
      queue.receivers.pop_front();
      if (queue.receivers.empty() && queue.events.empty()) shard.queues.erase(channel);
    } else {
      const size_t capacity = CapacityFor(channel);
      if (queue.events.size() >= capacity) {
        return absl::ResourceExhaustedError(absl::StrCat("channel full: \"", channel, "\" holds ",
                                                         capacity, " undelivered events"));
      }
      if (queued_bytes_.load(std::memory_order_relaxed) + event->ByteSize() >
          limits_.max_queued_bytes) {
        if (queue.events.empty()) shard.queues.erase(channel);
        return absl::ResourceExhaustedError(absl::StrCat(
            "layer full: ", limits_.max_queued_bytes, " bytes of undelivered events are queued"));
      }
      if (quota != nullptr && !quota->TryCharge(event->ByteSize())) {
        if (queue.events.empty()) shard.queues.erase(channel);
        return absl::ResourceExhaustedError(
            absl::StrCat("caller quota: ", quota->owner(), " has ", quota->bytes(),
                         " bytes of undelivered events queued, and may queue at most ",
                         quota->limit(), " (--caller_queued_bytes)"));
      }
      queue.events.push_back(QueuedEvent{event, now + limits_.expiry, quota});
      queued_bytes_.fetch_add(event->ByteSize(), std::memory_order_relaxed);
      queued_events_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (waiting != nullptr) waiting->OnEvent(event);
  return absl::OkStatus();
}

absl::StatusOr<EventPtr> Mailboxes::Take(absl::string_view channel, absl::Time now,
                                         std::shared_ptr<Receiver> receiver) {
  Shard& shard = ShardFor(channel);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.queues.find(channel);
  if (it != shard.queues.end()) {
    Queue& queue = it->second;
    DropExpired(queue, now);
    if (!queue.events.empty()) {
      Unqueued(queue.events.front());
      EventPtr event = std::move(queue.events.front().event);
      queue.events.pop_front();
      queued_events_.fetch_sub(1, std::memory_order_relaxed);
      if (queue.events.empty() && queue.receivers.empty()) shard.queues.erase(it);
      return event;
    }
  }
  if (receiver == nullptr) {
    if (it != shard.queues.end() && it->second.receivers.empty()) shard.queues.erase(it);
    return EventPtr();
  }
  Queue& queue = shard.queues[channel];
  if (queue.receivers.size() >= limits_.max_receivers_per_channel) {
    return absl::ResourceExhaustedError(absl::StrCat("channel \"", channel, "\" already has ",
                                                     limits_.max_receivers_per_channel,
                                                     " waiting receivers"));
  }
  queue.receivers.push_back(std::move(receiver));
  return EventPtr();
}

bool Mailboxes::Cancel(absl::string_view channel, const Receiver* receiver) {
  Shard& shard = ShardFor(channel);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.queues.find(channel);
  if (it == shard.queues.end()) return false;
  auto& receivers = it->second.receivers;
  auto r = std::find_if(receivers.begin(), receivers.end(),
                        [&](const auto& p) { return p.get() == receiver; });
  if (r == receivers.end()) return false;
  receivers.erase(r);
  if (receivers.empty() && it->second.events.empty()) shard.queues.erase(it);
  return true;
}

void Mailboxes::Clear() {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.queues.begin(); it != shard.queues.end();) {
      Queue& queue = it->second;
      for (const QueuedEvent& q : queue.events) Unqueued(q);
      queued_events_.fetch_sub(queue.events.size(), std::memory_order_relaxed);
      queue.events.clear();
      if (queue.receivers.empty()) {
        shard.queues.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

void Mailboxes::Sweep(absl::Time now) {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto c = shard.queues.begin(); c != shard.queues.end();) {
      DropExpired(c->second, now);
      if (c->second.events.empty() && c->second.receivers.empty()) {
        shard.queues.erase(c++);
      } else {
        ++c;
      }
    }
  }
}

uint64_t Mailboxes::channels() const {
  uint64_t n = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    n += shard.queues.size();
  }
  return n;
}

}  // namespace groupsvc
