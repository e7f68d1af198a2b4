#include "edge/net/recent_refusals.h"

#include <boost/url/parse_query.hpp>

#include "shared/utf8.h"

namespace edge {

RecentRefusals::RecentRefusals(size_t capacity, absl::Duration ttl, const chat::Clock* clock)
    : capacity_(capacity), ttl_(ttl), clock_(clock) {}

std::string RecentRefusals::AttemptOf(absl::string_view query) {
  auto params = boost::urls::parse_query(boost::core::string_view(query.data(), query.size()));
  if (!params) return "";
  auto it = params->find("attempt");
  if (it == params->end()) return "";
  // Raw (still percent-encoded): a valid id has nothing to decode.
  const std::string id((*it).value.data(), (*it).value.size());
  if (id.size() < 16 || id.size() > 64) return "";
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return "";
  }
  return id;
}

void RecentRefusals::Record(const std::string& id, int status, absl::string_view reason) {
  if (id.empty()) return;
  const absl::Time now = clock_->Now();
  Refusal refusal{status, chat::ClipUtf8(std::string(reason), kMaxReason), now};
  absl::MutexLock lock(&mu_);
  auto [it, added] = latest_.insert_or_assign(id, std::move(refusal));
  if (added) order_.push_back(id);  // An id again (a page reuses none) keeps its place.
  // From the oldest: the expired, and what is past the capacity.
  while (!order_.empty()) {
    auto oldest = latest_.find(order_.front());
    if (oldest->second.at + ttl_ >= now && latest_.size() <= capacity_) break;
    latest_.erase(oldest);
    order_.pop_front();
  }
}

std::optional<RecentRefusals::Refusal> RecentRefusals::Find(const std::string& id) const {
  if (id.empty()) return std::nullopt;
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(id);
  if (it == latest_.end() || it->second.at + ttl_ < now) return std::nullopt;
  return it->second;
}

}  // namespace edge
