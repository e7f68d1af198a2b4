#include "groupsvc/registry/history.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace groupsvc {

History::History(HistoryOptions options, std::string epoch)
    : options_(options), epoch_(std::move(epoch)) {}

void History::DropFrontLocked(Ring& ring) {
  bytes_ -= ring.entries.front().event->ByteSize();
  ring.entries.pop_front();
}

void History::ExpireLocked(Ring& ring, absl::Time now) {
  while (!ring.entries.empty() && ring.entries.front().time + options_.ttl <= now) {
    DropFrontLocked(ring);
  }
}

void History::EvictOldestLocked() {
  // order_ may name events already gone (by ttl or per_group): skip those.
  while (!order_.empty()) {
    auto [group, offset] = std::move(order_.front());
    order_.pop_front();
    auto it = groups_.find(group);
    if (it == groups_.end() || it->second.entries.empty()) continue;
    if (it->second.entries.front().offset != offset) continue;
    DropFrontLocked(it->second);
    return;
  }
}

std::string History::NewRingEpochLocked() const {
  return forgotten_ == 0 ? std::string() : absl::StrCat(epoch_, "-", forgotten_);
}

uint64_t History::Append(absl::string_view group, const EventPtr& event, absl::Time now,
                         std::string* epoch) {
  if (epoch != nullptr) epoch->clear();
  if (options_.per_group == 0) return 0;
  absl::MutexLock lock(&mu_);
  auto [it, created] = groups_.try_emplace(group);
  Ring& ring = it->second;
  if (created) ring.epoch = NewRingEpochLocked();
  if (epoch != nullptr) *epoch = ring.epoch;
  ExpireLocked(ring, now);
  const uint64_t offset = ++ring.latest;
  ring.entries.push_back(HistoryEntry{offset, event, now});
  bytes_ += event->ByteSize();
  order_.emplace_back(std::string(group), offset);
  while (ring.entries.size() > options_.per_group) DropFrontLocked(ring);
  while (bytes_ > options_.max_bytes && !order_.empty()) EvictOldestLocked();
  // order_ outgrows the events only by those dropped per group or by ttl;
  // rebuilt when it holds twice as many entries as there can be events.
  if (order_.size() > 2 * (options_.max_bytes / 64 + options_.per_group)) {
    std::deque<std::pair<std::string, uint64_t>> kept;
    for (auto& entry : order_) {
      auto it = groups_.find(entry.first);
      if (it != groups_.end() && !it->second.entries.empty() &&
          it->second.entries.front().offset <= entry.second) {
        kept.push_back(std::move(entry));
      }
    }
    order_.swap(kept);
  }
  return offset;
}

HistoryPage History::Since(absl::string_view group, const HistoryQuery& query, absl::Time now) {
  const uint64_t since = query.since;
  size_t limit = query.limit;
  HistoryPage page;
  if (limit == 0 || limit > options_.per_group) limit = std::max<size_t>(1, options_.per_group);
  absl::MutexLock lock(&mu_);
  if (options_.per_group == 0) return page;  // No history: never recovered, no epoch.
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    // Nothing here yet: what the group's numbering will be under.
    const std::string next = NewRingEpochLocked();
    page.epoch = next.empty() ? epoch_ : next;
    page.recovered = !query.latest && query.epoch == page.epoch && since == 0;
    return page;
  }
  Ring& ring = it->second;
  page.epoch = EpochOf(ring);
  ExpireLocked(ring, now);
  page.latest = ring.latest;
  const uint64_t oldest = ring.entries.empty() ? ring.latest + 1 : ring.entries.front().offset;
  // Everything after `since` is still here (or nothing came after it).
  page.recovered =
      !query.latest && query.epoch == page.epoch && since <= ring.latest && since + 1 >= oldest;
  auto fits = [&query](size_t bytes, size_t count) {
    return count == 0 || query.max_bytes == 0 || bytes <= query.max_bytes;
  };
  size_t bytes = 0;
  if (page.recovered) {
    // The oldest missed first, as many as fit: the client pages on.
    for (auto e = ring.entries.begin() + static_cast<std::ptrdiff_t>(since + 1 - oldest);
         e != ring.entries.end() && page.events.size() < limit; ++e) {
      bytes += e->event->ByteSize();
      if (!fits(bytes, page.events.size())) break;
      page.events.push_back(*e);
    }
    return page;
  }
  // The latest: as many of the newest as fit, oldest first.
  auto from = ring.entries.end();
  size_t count = 0;
  while (from != ring.entries.begin() && count < limit) {
    bytes += std::prev(from)->event->ByteSize();
    if (!fits(bytes, count)) break;
    --from;
    ++count;
  }
  page.events.assign(from, ring.entries.end());
  return page;
}

void History::Clear() {
  absl::MutexLock lock(&mu_);
  // The offsets go on: a client's offset from before the flush is not
  // recovered into an unrelated numbering.
  for (auto& [name, ring] : groups_) ring.entries.clear();
  order_.clear();
  bytes_ = 0;
}

void History::Sweep(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (now < last_sweep_ + options_.ttl / 10) return;
  last_sweep_ = now;
  for (auto it = groups_.begin(); it != groups_.end();) {
    ExpireLocked(it->second, now);
    if (it->second.entries.empty()) {
      groups_.erase(it++);
      ++forgotten_;
    } else {
      ++it;
    }
  }
}

size_t History::groups() const {
  absl::MutexLock lock(&mu_);
  return groups_.size();
}

size_t History::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace groupsvc
