#include "groupsvc/registry/users.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shared/names.h"

namespace groupsvc {

absl::Status Users::Connect(UserConnection connection, uint32_t cap, uint32_t* count) {
  absl::MutexLock lock(&mu_);
  Connections& mine = by_user_[connection.user_id];
  auto known = mine.find(connection.channel);
  if (known != mine.end()) {
    // The same connection again (a replay): its place and its since are kept.
    known->second.name = std::move(connection.name);
    if (count != nullptr) *count = mine.size();
    return absl::OkStatus();
  }
  if (count != nullptr) *count = mine.size();
  if (cap > 0 && mine.size() >= cap) {
    std::string why = absl::StrCat("user \"", connection.user_id, "\" already has ", mine.size(),
                                   " connection", mine.size() == 1 ? "" : "s",
                                   ", the most one user may have (--max_connections_per_user=", cap,
                                   "); close one first");
    if (mine.empty()) by_user_.erase(connection.user_id);
    return absl::ResourceExhaustedError(std::move(why));
  }
  if (user_of_.size() >= max_connections_) {
    if (mine.empty()) by_user_.erase(connection.user_id);
    return absl::ResourceExhaustedError(
        absl::StrCat("groupsvc tracks at most ", max_connections_, " user connections"));
  }
  // A channel registered under another user before (it cannot be, unless an
  // edge reuses names) moves to this one.
  if (auto other = user_of_.find(connection.channel); other != user_of_.end()) {
    auto user = by_user_.find(other->second);
    if (user != by_user_.end()) {
      user->second.erase(connection.channel);
      if (user->second.empty()) by_user_.erase(user);
    }
  }
  user_of_[connection.channel] = connection.user_id;
  const std::string channel = connection.channel;
  // (`mine` may have moved if the other user's erase rehashed by_user_.)
  Connections& now_mine = by_user_[connection.user_id];
  now_mine.emplace(channel, std::move(connection));
  if (count != nullptr) *count = now_mine.size();
  return absl::OkStatus();
}

bool Users::Disconnect(absl::string_view user_id, absl::string_view channel) {
  absl::MutexLock lock(&mu_);
  auto user = by_user_.find(user_id);
  if (user == by_user_.end() || user->second.erase(channel) == 0) return false;
  if (user->second.empty()) by_user_.erase(user);
  user_of_.erase(channel);
  return true;
}

size_t Users::RemoveOwner(absl::string_view owner) {
  absl::MutexLock lock(&mu_);
  // A scan: an edge's stream ends rarely, a connection opens often.
  std::vector<std::pair<std::string, std::string>> gone;
  for (const auto& [channel, user] : user_of_) {
    if (chat::ChannelOwnerPrefix(channel) == owner) gone.emplace_back(channel, user);
  }
  for (const auto& [channel, user_id] : gone) {
    user_of_.erase(channel);
    auto user = by_user_.find(user_id);
    if (user == by_user_.end()) continue;
    user->second.erase(channel);
    if (user->second.empty()) by_user_.erase(user);
  }
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

std::vector<UserConnection> Users::Take(absl::string_view user_id) {
  absl::MutexLock lock(&mu_);
  auto user = by_user_.find(user_id);
  if (user == by_user_.end()) return {};
  std::vector<UserConnection> list = Sorted(user->second);
  for (const UserConnection& c : list) user_of_.erase(c.channel);
  by_user_.erase(user);
  return list;
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
