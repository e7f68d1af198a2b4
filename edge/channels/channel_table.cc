#include "edge/channels/channel_table.h"

#include "absl/strings/str_cat.h"

namespace edge {

ChannelTable::ChannelTable(std::string prefix, std::shared_ptr<EventLoops> loops)
    : prefix_(std::move(prefix)), loops_(std::move(loops)) {
  for (size_t i = 0; i < loops_->size(); ++i) rounds_.push_back(std::make_unique<Handoff>(*this));
}

ChannelTable::Handoff::Handoff(const ChannelTable& table)
    : loops_(*table.loops_), shares_(table.loops_->size()) {}

void ChannelTable::Handoff::Add(size_t loop, std::shared_ptr<ChannelSink> sink,
                                const LayerEventPtr& event) {
  Share& share = shares_[loop < shares_.size() ? loop : 0];
  if (share.events.empty() || share.events.back().second != event) {
    share.events.emplace_back(share.sinks.size(), event);
  }
  share.sinks.push_back(std::move(sink));
  empty_ = false;
}

void ChannelTable::Handoff::Flush() {
  if (empty_) return;
  // Taken out first: a sink may deliver again, into this hand-off, while its
  // share runs (at once, with InlineLoops).
  std::vector<Share> shares(shares_.size());
  shares.swap(shares_);
  empty_ = true;
  for (size_t loop = 0; loop < shares.size(); ++loop) {
    if (shares[loop].sinks.empty()) continue;
    loops_.Post(loop, [share = std::move(shares[loop])] {
      for (size_t e = 0; e < share.events.size(); ++e) {
        const size_t end =
            e + 1 < share.events.size() ? share.events[e + 1].first : share.sinks.size();
        for (size_t i = share.events[e].first; i < end; ++i) {
          share.sinks[i]->OnEvent(share.events[e].second);
        }
      }
    });
  }
}

std::string ChannelTable::Add(std::weak_ptr<ChannelSink> sink, size_t loop) {
  std::string name = absl::StrCat(prefix_, "c", next_.fetch_add(1, std::memory_order_relaxed));
  absl::MutexLock lock(&mu_);
  sinks_[name] = Entry{std::move(sink), loop, std::nullopt, std::nullopt, false};
  return name;
}

std::optional<UserConnection> ChannelTable::Remove(const std::string& channel) {
  absl::MutexLock lock(&mu_);
  auto it = sinks_.find(channel);
  if (it == sinks_.end()) return std::nullopt;
  std::optional<UserConnection> connection = std::move(it->second.connection);
  sinks_.erase(it);
  return connection;
}

bool ChannelTable::SetConnection(const std::string& channel, UserConnection user) {
  absl::MutexLock lock(&mu_);
  auto it = sinks_.find(channel);
  if (it == sinks_.end()) return false;
  it->second.connection = std::move(user);
  return true;
}

std::vector<std::pair<std::string, UserConnection>> ChannelTable::Connections() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, UserConnection>> out;
  for (const auto& [channel, entry] : sinks_) {
    if (entry.connection.has_value()) out.emplace_back(channel, *entry.connection);
  }
  return out;
}

size_t ChannelTable::CountConnections(const std::string& user_id) const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [channel, entry] : sinks_) {
    if (entry.connection.has_value() && entry.connection->id == user_id) ++n;
  }
  return n;
}

size_t ChannelTable::CloseUser(const std::string& user_id, const std::string& group, uint16_t code,
                               const std::string& reason) {
  std::vector<std::pair<size_t, std::shared_ptr<ChannelSink>>> closing;
  {
    absl::MutexLock lock(&mu_);
    const absl::flat_hash_set<std::string>* members = nullptr;
    if (!group.empty()) {
      auto it = groups_.find(group);
      if (it == groups_.end()) return 0;
      members = &it->second;
    }
    for (auto& [channel, entry] : sinks_) {
      if (!entry.connection.has_value() || entry.connection->id != user_id) continue;
      if (members != nullptr && !members->contains(channel)) continue;
      entry.closed_by_operator = true;
      if (auto sink = entry.sink.lock()) closing.emplace_back(entry.loop, std::move(sink));
    }
  }
  for (auto& share : closing) {
    // (A structured binding cannot be captured in C++17.)
    loops_->Post(share.first,
                 [sink = std::move(share.second), code, reason] { sink->OnClose(code, reason); });
  }
  return closing.size();
}

bool ChannelTable::ClosedByOperator(const std::string& channel) const {
  absl::MutexLock lock(&mu_);
  auto it = sinks_.find(channel);
  return it != sinks_.end() && it->second.closed_by_operator;
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

size_t ChannelTable::DeliverToGroup(const std::string& group, const LayerEventPtr& event,
                                    Handoff& handoff) {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(group);
  return it == groups_.end() ? 0 : DeliverLocked(it->second, event, handoff);
}

size_t ChannelTable::DeliverToGroupInRound(const std::string& group, const LayerEventPtr& event) {
  return InRound([&](Handoff& handoff) { return DeliverToGroup(group, event, handoff); });
}

std::vector<std::pair<std::string, std::string>> ChannelTable::AllMemberships() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [group, members] : groups_) {
    for (const auto& c : members) out.emplace_back(group, c);
  }
  return out;
}

void ChannelTable::SetUser(const std::string& channel, ChannelUser user) {
  absl::MutexLock lock(&mu_);
  auto it = sinks_.find(channel);
  if (it != sinks_.end()) it->second.user = std::move(user);
}

std::optional<ChannelUser> ChannelTable::User(const std::string& channel) const {
  absl::MutexLock lock(&mu_);
  auto it = sinks_.find(channel);
  if (it == sinks_.end()) return std::nullopt;
  return it->second.user;
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
