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

size_t ChannelTable::DeliverToGroup(const std::string& group, const LayerEventPtr& event) {
  Sinks found;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(group);
    if (it != groups_.end()) found = SinksLocked(it->second);
  }
  return Hand(found, event);
}

size_t ChannelTable::Hand(const Sinks& sinks, const LayerEventPtr& event) {
  for (const auto& sink : sinks) sink->OnEvent(event);
  return sinks.size();
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
