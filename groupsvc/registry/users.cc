#include "groupsvc/registry/users.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shared/names.h"

namespace groupsvc {

absl::Status Users::Connect(UserConnection connection, uint32_t cap, uint32_t* count) {
  absl::MutexLock lock(&mu_);
  // A channel registered under another user before (it cannot be, unless an
  // edge reuses names) moves to this one.
  if (auto other = user_of_.find(connection.channel);
      other != user_of_.end() && other->second != connection.user_id) {
    ForgetLocked(connection.channel);
  }
  Connections& mine = by_user_[connection.user_id];
  if (auto known = mine.find(connection.channel); known != mine.end()) {
    // The same connection again (a replay): its place and its since are kept.
    known->second.name = std::move(connection.name);
    if (count != nullptr) *count = mine.size();
    return absl::OkStatus();
  }
  if (count != nullptr) *count = mine.size();
  absl::Status refused;
  if (cap > 0 && mine.size() >= cap) {
    refused = chat::UserCapReached(connection.user_id, mine.size(), cap);
  } else if (user_of_.size() >= max_connections_) {
    refused = absl::ResourceExhaustedError(
        absl::StrCat("groupsvc tracks at most ", max_connections_, " user connections"));
  }
  if (!refused.ok()) {
    if (mine.empty()) by_user_.erase(connection.user_id);
    return refused;
  }
  user_of_[connection.channel] = connection.user_id;
  by_owner_[chat::ChannelOwnerPrefix(connection.channel)].insert(connection.channel);
  const std::string channel = connection.channel;
  mine.emplace(channel, std::move(connection));
  if (count != nullptr) *count = mine.size();
  return absl::OkStatus();
}

void Users::ForgetLocked(const std::string& channel) {
  auto of = user_of_.find(channel);
  if (of == user_of_.end()) return;
  if (auto user = by_user_.find(of->second); user != by_user_.end()) {
    user->second.erase(channel);
    if (user->second.empty()) by_user_.erase(user);
  }
  if (auto owner = by_owner_.find(chat::ChannelOwnerPrefix(channel)); owner != by_owner_.end()) {
    owner->second.erase(channel);
    if (owner->second.empty()) by_owner_.erase(owner);
  }
  user_of_.erase(of);
}

bool Users::Disconnect(absl::string_view user_id, absl::string_view channel) {
  absl::MutexLock lock(&mu_);
  auto of = user_of_.find(channel);
  if (of == user_of_.end() || of->second != user_id) return false;
  ForgetLocked(std::string(channel));
  return true;
}

size_t Users::RemoveOwner(absl::string_view owner) {
  absl::MutexLock lock(&mu_);
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return 0;
  const std::vector<std::string> gone(it->second.begin(), it->second.end());
  for (const std::string& channel : gone) ForgetLocked(channel);
  return gone.size();
}

std::vector<UserConnection> Users::Sorted(const Connections& connections) {
  std::vector<UserConnection> list;
  list.reserve(connections.size());
  for (const auto& [channel, c] : connections) list.push_back(c);
  std::sort(list.begin(), list.end(), [](const UserConnection& a, const UserConnection& b) {
    return std::tie(a.since, a.channel) < std::tie(b.since, b.channel);
  });
  return list;
}

std::vector<UserConnection> Users::Find(absl::string_view user_id) const {
  absl::MutexLock lock(&mu_);
  auto user = by_user_.find(user_id);
  if (user == by_user_.end()) return {};
  return Sorted(user->second);
}

size_t Users::users() const {
  absl::MutexLock lock(&mu_);
  return by_user_.size();
}

size_t Users::connections() const {
  absl::MutexLock lock(&mu_);
  return user_of_.size();
}

}  // namespace groupsvc
