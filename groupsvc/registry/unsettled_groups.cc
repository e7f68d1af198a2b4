#include "groupsvc/registry/unsettled_groups.h"

#include <algorithm>
#include <utility>

namespace groupsvc {

UnsettledGroups::UnsettledGroups(UnsettledOptions options, absl::Time start)
    : options_(options),
      warmup_until_(start + options.warmup),
      warming_up_(options.warmup > absl::ZeroDuration()) {}

void UnsettledGroups::MarkLost(absl::string_view edge_id, absl::flat_hash_set<std::string> groups,
                               uint64_t settled_by, absl::Time now) {
  if (groups.empty() || options_.window <= absl::ZeroDuration()) return;
  const absl::Time until = now + options_.window;
  absl::MutexLock lock(&mu_);
  auto it = lost_.find(edge_id);
  if (it == lost_.end() && lost_.size() >= options_.max_lost_edges) {
    // Too many to track one by one: everything is unsettled for the window.
    if (all_until_ == absl::InfinitePast()) entries_.fetch_add(1, std::memory_order_release);
    all_until_ = std::max(all_until_, until);
    return;
  }
  if (it == lost_.end()) {
    it = lost_.emplace(edge_id, LostEdge{}).first;
    entries_.fetch_add(1, std::memory_order_release);
  }
  LostEdge& lost = it->second;
  if (lost.groups.empty()) {
    lost.groups = std::move(groups);
  } else {
    lost.groups.merge(groups);
  }
  lost.until = until;
  lost.settled_by = std::max(lost.settled_by, settled_by);
}

void UnsettledGroups::AddLostGroups(absl::string_view edge_id,
                                    absl::flat_hash_set<std::string> groups) {
  if (groups.empty()) return;
  absl::MutexLock lock(&mu_);
  auto it = lost_.find(edge_id);
  if (it != lost_.end()) it->second.groups.merge(groups);
}

void UnsettledGroups::ReplayApplied(absl::string_view edge_id, uint64_t generation) {
  if (entries_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = lost_.find(edge_id);
  if (it == lost_.end() || it->second.settled_by > generation) return;
  lost_.erase(it);
  entries_.fetch_sub(1, std::memory_order_release);
}

bool UnsettledGroups::Unsettled(absl::string_view group, absl::Time now) const {
  if (warming_up_.load(std::memory_order_relaxed)) {
    if (now < warmup_until_) return true;
    warming_up_.store(false, std::memory_order_relaxed);
  }
  if (entries_.load(std::memory_order_acquire) == 0) return false;
  absl::ReaderMutexLock lock(&mu_);
  if (now < all_until_) return true;
  for (const auto& [edge_id, lost] : lost_) {
    if (now < lost.until && lost.groups.contains(group)) return true;
  }
  return false;
}

void UnsettledGroups::Sweep(absl::Time now) {
  if (entries_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&mu_);
  size_t erased = 0;
  for (auto it = lost_.begin(); it != lost_.end();) {
    if (it->second.until <= now) {
      lost_.erase(it++);
      ++erased;
    } else {
      ++it;
    }
  }
  if (all_until_ != absl::InfinitePast() && all_until_ <= now) {
    all_until_ = absl::InfinitePast();
    ++erased;
  }
  if (erased > 0) entries_.fetch_sub(erased, std::memory_order_release);
}

size_t UnsettledGroups::lost_edges() const {
  absl::ReaderMutexLock lock(&mu_);
  return lost_.size();
}

}  // namespace groupsvc
