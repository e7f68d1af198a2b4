// Users: the connections of the signed-in users placed on this shard (by
// user id, shared/placement.h), as their edges register them, so that one
// place in the fleet can count a user's connections (--max_connections_per_user
// on the edges) and operators can find and close them (GetUser, Disconnect).
//
// A connection is keyed by its channel, which names the edge that owns it
// (the prefix up to '!'): when that edge's stream ends, its connections go at
// once (RemoveOwner), so a crashed edge never keeps a user at its cap; its
// replay registers the live ones again.
//
//   Users users(/*max_connections=*/1'000'000);
//   absl::Status s = users.Connect({"u1", "Ann", "edge-1.x!c1", "edge-1", "lobby", now}, 3);
//   if (absl::IsResourceExhausted(s)) ... refuse the upgrade (HTTP 429)
//   users.Disconnect("u1", "edge-1.x!c1");
//
// Thread-safe (one mutex); no method calls out.
#ifndef CHAT_GROUPSVC_REGISTRY_USERS_H_
#define CHAT_GROUPSVC_REGISTRY_USERS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupsvc {

struct UserConnection {
  std::string user_id;
  std::string name;
  std::string channel;
  std::string edge_id;
  std::string room;
  absl::Time since;
};

class Users {
 public:
  // `max_connections`: across all users, so that the table is bounded.
  explicit Users(size_t max_connections) : max_connections_(max_connections) {}

  // Registers `connection` (again: its since is kept). With `cap` > 0, a user
  // that already has `cap` other connections is RESOURCE_EXHAUSTED, saying so.
  // Returns the user's connection count through `count` either way.
  absl::Status Connect(UserConnection connection, uint32_t cap, uint32_t* count = nullptr);
  // False if it was not registered (as this user's).
  bool Disconnect(absl::string_view user_id, absl::string_view channel);
  // Every connection whose channel `owner` (an edge's prefix) owns.
  size_t RemoveOwner(absl::string_view owner);
  // Oldest first.
  std::vector<UserConnection> Find(absl::string_view user_id) const;
  size_t users() const;
  size_t connections() const;

 private:
  // A user's connections by channel.
  using Connections = absl::flat_hash_map<std::string, UserConnection>;
  static std::vector<UserConnection> Sorted(const Connections& connections);

  const size_t max_connections_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Connections> by_user_ ABSL_GUARDED_BY(mu_);
  // Each connection's user, by channel.
  absl::flat_hash_map<std::string, std::string> user_of_ ABSL_GUARDED_BY(mu_);
  // Each edge's connections, by its owner prefix (RemoveOwner runs under the
  // edge directory's lock: no scan of every connection there).
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> by_owner_ ABSL_GUARDED_BY(mu_);
  void ForgetLocked(const std::string& channel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_USERS_H_
