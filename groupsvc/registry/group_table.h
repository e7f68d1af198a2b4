// GroupTable: who is in which group. Groups are sharded by name, each shard
// under its own mutex; a group's members are bucketed by owner prefix (the
// part of the channel name up to '!', "" for names without one), so that a
// group_send reads one bucket per edge and makes one delivery of it.
//
// A membership lapses `group_expiry` after it was last added (renewed):
// lookups skip lapsed members, and Sweep, the table's only walker, removes them.
//
// Thread-safe; no method calls out while holding a lock.
#ifndef CHAT_GROUPSVC_REGISTRY_GROUP_TABLE_H_
#define CHAT_GROUPSVC_REGISTRY_GROUP_TABLE_H_

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupsvc {

struct MemberInfo {
  std::string channel;
  std::string edge_id;  // Empty when no attached edge owns the channel.
  absl::Time joined;
  absl::Time renewed;
};

struct GroupSummary {
  std::string name;
  size_t size = 0;
};

struct GroupPage {
  std::vector<GroupSummary> groups;
  std::string next_page_token;
};

// The live members of one group that one owner prefix holds.
struct OwnerMembers {
  std::string owner;
  std::vector<std::string> channels;
};

class GroupTable {
 public:
  explicit GroupTable(absl::Duration group_expiry) : group_expiry_(group_expiry) {}
  GroupTable(const GroupTable&) = delete;
  GroupTable& operator=(const GroupTable&) = delete;

  // Adds or renews; a lapsed membership comes back as a new one.
  void Add(absl::string_view group, absl::string_view channel, absl::Time now);
  void Discard(absl::string_view group, absl::string_view channel);
  // The live members by owner (lapsed ones are skipped until Sweep removes
  // them); empty for an unknown group.
  std::vector<OwnerMembers> Members(absl::string_view group, absl::Time now);
  // Removes every membership of `owner`'s channels; adds the groups they were
  // in to `groups` if set.
  void RemoveOwner(absl::string_view owner, absl::flat_hash_set<std::string>* groups = nullptr);
  // The groups in which `owner`'s channels have members.
  absl::flat_hash_set<std::string> OwnerGroups(absl::string_view owner) const;
  void Clear();

  // Groups named `name_prefix`... after `page_token`, by name, at most `page_size`.
  GroupPage List(absl::string_view name_prefix, size_t page_size, absl::string_view page_token,
                 absl::Time now) const;
  // The live members of `group` (MemberInfo::edge_id holds the owner prefix), by channel name.
  std::vector<MemberInfo> Get(absl::string_view group, absl::Time now) const;
  // Groups and memberships held (lapsed ones until the next Sweep).
  std::pair<uint64_t, uint64_t> Counts() const;

  // Removes lapsed memberships, adding them to `lapsed` (group, channel) if set.
  void Sweep(absl::Time now, std::vector<std::pair<std::string, std::string>>* lapsed = nullptr);

 private:
  struct Membership {
    absl::Time joined;
    absl::Time renewed;
  };
  using Bucket = absl::flat_hash_map<std::string, Membership>;
  struct Group {
    absl::flat_hash_map<std::string, Bucket> by_owner;
    size_t size = 0;
  };
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, Group> groups ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(absl::string_view group) const;
  bool Lapsed(const Membership& m, absl::Time now) const {
    return m.renewed + group_expiry_ <= now;
  }

  const absl::Duration group_expiry_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_GROUP_TABLE_H_
