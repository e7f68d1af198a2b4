#include "groupsvc/registry/presence.h"

#include <algorithm>
#include <utility>

#include "shared/names.h"

namespace groupsvc {

std::optional<PresenceChange> Presence::Join(absl::string_view group, absl::string_view channel,
                                             const PresenceUser* user, bool watch, absl::Time now) {
  const bool named = user != nullptr && !user->id.empty();
  if (!named && !watch) {
    // Anonymous and not watching: only counted, which GetPresence derives
    // from the group's size, so nothing is kept.
    return std::nullopt;
  }
  absl::MutexLock lock(&mu_);
  Group& g = groups_[group];
  if (watch) g.watchers.insert(std::string(channel));
  auto [tracked, inserted] = g.channels.try_emplace(channel, named ? user->id : "");
  // A channel keeps the user of its first group_add (renewals say the same).
  if (!inserted || tracked->second.empty()) return std::nullopt;
  auto [it, fresh] = g.users.try_emplace(user->id);
  User& u = it->second;
  u.channels.insert(std::string(channel));
  u.name = user->name;
  if (!fresh) {
    u.leave_at = absl::InfiniteFuture();  // Back before its leave was due.
    return std::nullopt;
  }
  u.since = now;
  return PresenceChange{std::string(group), true, *user, std::string(channel)};
}

std::optional<std::string> Presence::DropLocked(Group& group, absl::string_view channel) {
  group.watchers.erase(channel);
  auto tracked = group.channels.find(channel);
  if (tracked == group.channels.end()) return std::nullopt;
  std::string id = std::move(tracked->second);
  group.channels.erase(tracked);
  if (id.empty()) return std::nullopt;
  auto u = group.users.find(id);
  if (u == group.users.end()) return std::nullopt;
  u->second.channels.erase(channel);
  if (!u->second.channels.empty()) return std::nullopt;
  return id;
}

void Presence::EraseIfEmptyLocked(absl::string_view group) {
  auto g = groups_.find(group);
  if (g != groups_.end() && g->second.channels.empty() && g->second.users.empty()) groups_.erase(g);
}

void Presence::ScheduleLeaveLocked(Group& group, absl::string_view name, std::string id,
                                   absl::Time at) {
  group.users[id].leave_at = at;
  due_.emplace(at, std::string(name), std::move(id));
}

void Presence::Leave(absl::string_view group, absl::string_view channel, absl::Time now,
                     bool at_once) {
  absl::MutexLock lock(&mu_);
  auto g = groups_.find(group);
  if (g == groups_.end()) return;
  if (std::optional<std::string> last = DropLocked(g->second, channel); last.has_value()) {
    ScheduleLeaveLocked(g->second, group, *std::move(last), at_once ? now : now + debounce_);
  }
  EraseIfEmptyLocked(group);
}

void Presence::RemoveOwner(absl::string_view owner, const absl::flat_hash_set<std::string>& groups,
                           absl::Duration leave_after, absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (const std::string& name : groups) {
    auto g = groups_.find(name);
    if (g == groups_.end()) continue;
    std::vector<std::string> gone;
    for (const auto& [channel, id] : g->second.channels) {
      if (chat::ChannelOwnerPrefix(channel) == owner) gone.push_back(channel);
    }
    for (const std::string& channel : gone) {
      std::optional<std::string> last = DropLocked(g->second, channel);
      if (last.has_value())
        ScheduleLeaveLocked(g->second, name, *std::move(last), now + leave_after);
    }
  }
}

std::vector<PresenceChange> Presence::Due(absl::Time now) {
  std::vector<PresenceChange> left;
  absl::MutexLock lock(&mu_);
  while (!due_.empty() && std::get<0>(*due_.begin()) <= now) {
    auto [at, group, id] = std::move(due_.extract(due_.begin()).value());
    auto g = groups_.find(group);
    if (g == groups_.end()) continue;
    auto u = g->second.users.find(id);
    // Skipped if the user came back (or left at once) since.
    if (u == g->second.users.end() || u->second.leave_at != at || !u->second.channels.empty()) {
      continue;
    }
    left.push_back(PresenceChange{group, false, PresenceUser{id, u->second.name}, ""});
    g->second.users.erase(u);
    EraseIfEmptyLocked(group);
  }
  return left;
}

PresenceSnapshot Presence::Get(absl::string_view group) const {
  PresenceSnapshot snapshot;
  absl::MutexLock lock(&mu_);
  auto g = groups_.find(group);
  if (g == groups_.end()) return snapshot;
  for (const auto& [id, u] : g->second.users) {
    // A user whose leave is pending is still listed: it may be back at once.
    snapshot.members.push_back(PresenceMember{PresenceUser{id, u.name},
                                              static_cast<uint32_t>(u.channels.size()), u.since});
  }
  std::sort(snapshot.members.begin(), snapshot.members.end(),
            [](const PresenceMember& a, const PresenceMember& b) { return a.user.id < b.user.id; });
  return snapshot;
}

std::vector<std::string> Presence::Watchers(absl::string_view group) const {
  absl::MutexLock lock(&mu_);
  auto g = groups_.find(group);
  if (g == groups_.end()) return {};
  return {g->second.watchers.begin(), g->second.watchers.end()};
}

void Presence::Clear() {
  absl::MutexLock lock(&mu_);
  groups_.clear();
  due_.clear();
}

size_t Presence::groups() const {
  absl::MutexLock lock(&mu_);
  return groups_.size();
}

}  // namespace groupsvc
