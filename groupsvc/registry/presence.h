// Presence: which signed-in users are in each group, from the memberships
// edges register with a user (GroupAddRequest.user): one member per user
// however many channels (tabs) it has, with the channels that watch the
// group's presence events.
//
// A user joins a group with its first channel there and leaves when its last
// one has been gone for `debounce`, so that a page reconnecting within it
// (a network blip, an edge drained) is neither a leave nor a join; a lost
// edge's users leave sooner (RemoveOwner's own delay).
//
//   Presence presence(absl::Seconds(3));
//   if (auto change = presence.Join("chat_lobby", channel, &user, true, now)) notify(*change);
//   presence.Leave("chat_lobby", channel, now);
//   for (auto& change : presence.Due(now)) notify(change);  // periodically
//
// Thread-safe (one mutex); no method calls out.
#ifndef CHAT_GROUPSVC_REGISTRY_PRESENCE_H_
#define CHAT_GROUPSVC_REGISTRY_PRESENCE_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupsvc {

struct PresenceUser {
  std::string id;  // Empty: anonymous.
  std::string name;
};

struct PresenceMember {
  PresenceUser user;
  uint32_t connections = 0;
  absl::Time since;
};

// A user that joined or left a group, for its watchers.
struct PresenceChange {
  std::string group;
  bool joined = false;
  PresenceUser user;
  // The channel that joined: it learns the members from GetPresence instead.
  std::string channel;
};

struct PresenceSnapshot {
  std::vector<PresenceMember> members;  // By user id.
  // Set by the registry: the group's members without a user.
  uint32_t anonymous_connections = 0;
};

class Presence {
 public:
  explicit Presence(absl::Duration debounce) : debounce_(debounce) {}

  // `channel` is in `group` as `user` (null or empty id: anonymous); `watch`:
  // it gets the group's presence events. A change when the user is new there
  // (not when it comes back before its leave was due).
  std::optional<PresenceChange> Join(absl::string_view group, absl::string_view channel,
                                     const PresenceUser* user, bool watch, absl::Time now);
  // `channel` left `group`; its user's leave is due after the debounce if it
  // was the user's last channel there (`at_once`: now, an operator removed it).
  void Leave(absl::string_view group, absl::string_view channel, absl::Time now,
             bool at_once = false);
  // Every channel of `owner` (the prefix up to '!') left `groups`; its
  // users' leaves are due after `leave_after` (not the debounce: a lost
  // edge's users go sooner), unless they are back first.
  void RemoveOwner(absl::string_view owner, const absl::flat_hash_set<std::string>& groups,
                   absl::Duration leave_after, absl::Time now);
  // The leaves whose debounce is over.
  std::vector<PresenceChange> Due(absl::Time now);

  PresenceSnapshot Get(absl::string_view group) const;
  // The channels that watch `group`'s presence.
  std::vector<std::string> Watchers(absl::string_view group) const;
  void Clear();
  // Groups with at least one channel tracked.
  size_t groups() const;

 private:
  struct User {
    std::string name;
    absl::flat_hash_set<std::string> channels;
    absl::Time since;
    absl::Time leave_at = absl::InfiniteFuture();  // While no channel is left.
  };
  struct Group {
    absl::flat_hash_map<std::string, User> users;
    // Every tracked channel: its user's id ("" for anonymous).
    absl::flat_hash_map<std::string, std::string> channels;
    absl::flat_hash_set<std::string> watchers;
  };
  // Removes `channel`; returns the user's id if that was its last channel.
  std::optional<std::string> DropLocked(Group& group, absl::string_view channel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseIfEmptyLocked(absl::string_view group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `id`'s leave from `group` is due at `at` (its channels there are gone).
  void ScheduleLeaveLocked(Group& group, absl::string_view name, std::string id, absl::Time at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration debounce_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);
  // (due, group, user id) of each pending leave; an entry whose user came
  // back (or left at once) meanwhile is skipped when it comes up.
  std::set<std::tuple<absl::Time, std::string, std::string>> due_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_PRESENCE_H_
