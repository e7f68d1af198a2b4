// ShardMap: this groupsvc's place among the shards of one deployment, from
// --shards (every shard's address, in shard order: the same list the edges'
// --groupsvc has) and --shard_index (this one's position). Groups and channels
// are placed by shared/placement.h; without --shards there is one shard and
// everything is placed here.
//
// Resharding (--bridge_shards=M while the count changes between M and the
// length of --shards, see docs/sharding.md): edges may place by either count,
// so commands placed by either are accepted; an edge on the longer list joins
// each moved group under both placements and sends under M's, so M's
// placement is where a group's members all are. That is also where this
// shard forwards unary calls and looks for queued channels. The rule is the
// edges' own (chat::GroupOwners, shared/placement.h) with every shard
// bridging.
//
//   absl::StatusOr<ShardMap> map = ShardMap::Make({"a:50051", "b:50051"}, "1");
//   if (!map->OwnsGroup("chat_lobby")) ... forward to map->GroupOwner("chat_lobby")
//
// Immutable, so thread-safe.
// Lifetime: one per server, made from the flags before it starts; everything
// that places (services, streams, the forwarder) holds a pointer to it.
#ifndef CHAT_GROUPSVC_SHARDS_SHARD_MAP_H_
#define CHAT_GROUPSVC_SHARDS_SHARD_MAP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shared/placement.h"

namespace groupsvc {

class ShardMap {
 public:
  // One shard: this one.
  ShardMap() = default;
  // `index` is a number, or "auto": the ordinal at the end of `hostname`
  // ("groupsvc-2" is shard 2), as a StatefulSet's pods are named.
  // `bridge`: 0, or the other shard count (1 <= bridge < shards.size()).
  static absl::StatusOr<ShardMap> Make(std::vector<std::string> shards, absl::string_view index,
                                       absl::string_view hostname = "", uint32_t bridge = 0);

  uint32_t count() const { return addresses_.empty() ? 1 : addresses_.size(); }
  uint32_t self() const { return self_; }
  bool sharded() const { return count() > 1 || bridge_ > 0; }
  // The other count while resharding, else 0.
  uint32_t bridge() const { return bridge_; }
  // Every shard's address, in shard order; empty without --shards.
  const std::vector<std::string>& addresses() const { return addresses_; }
  // The count that places groups and channels for unary calls: bridge() while
  // resharding, else count().
  uint32_t placement_count() const { return bridge_ > 0 ? bridge_ : count(); }

  // Both placements of a group or channel; `send` is where unary calls go.
  chat::Owners GroupOwners(absl::string_view group) const;
  chat::Owners ChannelOwners(absl::string_view channel) const;
  uint32_t GroupOwner(absl::string_view group) const;
  uint32_t ChannelOwner(absl::string_view channel) const;
  // The shard that counts a user's connections (chat::UserShard over this
  // list; while resharding, edges on the other list count theirs on its
  // placement, which CheckUser accepts too).
  uint32_t UserOwner(absl::string_view user_id) const;
  bool OwnsGroup(absl::string_view group) const { return GroupOwner(group) == self_; }
  bool OwnsChannel(absl::string_view channel) const { return ChannelOwner(channel) == self_; }
  // FAILED_PRECONDITION naming the owner when the name is placed elsewhere
  // (by count(), and by bridge() while resharding): the sender's shard list
  // differs from this one's.
  absl::Status CheckGroup(absl::string_view group) const;
  absl::Status CheckChannel(absl::string_view channel) const;
  absl::Status CheckUser(absl::string_view user_id) const;

 private:
  absl::Status Elsewhere(absl::string_view what, absl::string_view name, uint32_t owner) const;

  std::vector<std::string> addresses_;
  uint32_t self_ = 0;
  uint32_t bridge_ = 0;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SHARDS_SHARD_MAP_H_
