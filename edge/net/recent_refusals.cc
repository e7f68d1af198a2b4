#include "edge/net/recent_refusals.h"

namespace edge {

RecentRefusals::RecentRefusals(size_t capacity, absl::Duration ttl, const chat::Clock* clock)
    : capacity_(capacity), ttl_(ttl), clock_(clock) {}

void RecentRefusals::Record(const std::string& key, int status, std::string reason) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  latest_[key] = Refusal{status, std::move(reason), now};
  order_.emplace_back(key, now);
  // Expired first, then the oldest past the bounds (a key recorded over and
  // over fills order_ alone: it is bounded too).
  while (!order_.empty() && (order_.front().second + ttl_ < now || latest_.size() > capacity_ ||
                             order_.size() > 2 * capacity_)) {
    auto it = latest_.find(order_.front().first);
    if (it != latest_.end() && it->second.at == order_.front().second) latest_.erase(it);
    order_.pop_front();
  }
}

std::optional<RecentRefusals::Refusal> RecentRefusals::Find(const std::string& key) const {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(key);
  if (it == latest_.end() || it->second.at + ttl_ < now) return std::nullopt;
  return it->second;
}

}  // namespace edge
