#include "edge/channel_table.h"

#include "absl/strings/str_cat.h"

namespace edge {

std::string ChannelTable::Add(std::weak_ptr<ChannelSink> sink) {
  std::string name = absl::StrCat(prefix_, "c", next_.fetch_add(1, std::memory_order_relaxed));
  absl::MutexLock lock(&mu_);
  sinks_[name] = std::move(sink);
  return name;
}

void ChannelTable::Remove(const std::string& channel) {
  absl::MutexLock lock(&mu_);
  sinks_.erase(channel);
}

bool ChannelTable::Join(const std::string& group, const std::string& channel) {
  absl::MutexLock lock(&mu_);
  return groups_[group].insert(channel).second;
}

bool ChannelTable::Leave(const std::string& group, const std::string& channel) {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group);
  if (it == groups_.end()) return false;
  bool erased = it->second.erase(channel) > 0;
  if (it->second.empty()) groups_.erase(it);
  return erased;
}

std::vector<std::string> ChannelTable::Members(const std::string& group) const {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group);
  if (it == groups_.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

std::vector<std::pair<std::string, std::string>> ChannelTable::AllMemberships() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [group, members] : groups_) {
    for (const auto& c : members) out.emplace_back(group, c);
  }
  return out;
}

size_t ChannelTable::groups() const {
  absl::MutexLock lock(&mu_);
  return groups_.size();
}

size_t ChannelTable::channels() const {
  absl::MutexLock lock(&mu_);
  return sinks_.size();
}

}  // namespace edge
