#include "groupsvc/shards/shard_map.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "shared/names.h"
#include "shared/placement.h"

namespace groupsvc {

absl::StatusOr<ShardMap> ShardMap::Make(std::vector<std::string> shards, absl::string_view index,
                                        absl::string_view hostname, uint32_t bridge) {
  ShardMap map;
  if (bridge > 0 && bridge >= std::max<size_t>(1, shards.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bridge_shards=", bridge, " must be below the number of shards in --shards (",
        shards.size(), "): while resizing, --shards lists the larger set"));
  }
  if (shards.empty()) {
    if (!index.empty() && index != "0" && index != "auto") {
      return absl::InvalidArgumentError("--shard_index needs --shards (the list of every shard)");
    }
    return map;
  }
  uint32_t i = 0;
  if (index == "auto") {
    const size_t dash = hostname.rfind('-');
    if (dash == absl::string_view::npos || !absl::SimpleAtoi(hostname.substr(dash + 1), &i)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shard_index=auto takes the ordinal at the end of the host name (\"groupsvc-2\"); "
          "host name \"",
          hostname, "\" has none"));
    }
  } else if (!absl::SimpleAtoi(index, &i)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard_index must be a number or \"auto\"; got \"", index, "\""));
  }
  if (i >= shards.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--shard_index=", i, " is outside --shards (",
                                                   shards.size(), " shards, from 0)"));
  }
  map.addresses_ = std::move(shards);
  map.self_ = i;
  map.bridge_ = bridge;
  return map;
}

namespace {

// groupsvc bridges while configured to: its owners are the edges' rule
// (chat::GroupOwners) with every shard bridging.
bool EveryShardBridges(uint32_t) { return true; }

}  // namespace

chat::Owners ShardMap::GroupOwners(absl::string_view group) const {
  return chat::GroupOwners(group, count(), bridge_, EveryShardBridges);
}

chat::Owners ShardMap::ChannelOwners(absl::string_view channel) const {
  return chat::ChannelOwners(channel, count(), bridge_, EveryShardBridges);
}

uint32_t ShardMap::GroupOwner(absl::string_view group) const { return GroupOwners(group).send; }

uint32_t ShardMap::ChannelOwner(absl::string_view channel) const {
  return ChannelOwners(channel).send;
}

absl::Status ShardMap::Elsewhere(absl::string_view what, absl::string_view name,
                                 uint32_t owner) const {
  return absl::FailedPreconditionError(absl::StrCat(
      what, " \"", name, "\" is placed on shard ", owner, " (", addresses_[owner], ") of ",
      placement_count(), "; this is shard ", self_,
      ": the sender's shard list (--groupsvc) must be groupsvc's --shards, in the same order"));
}

absl::Status ShardMap::CheckGroup(absl::string_view group) const {
  const chat::Owners owners = GroupOwners(group);
  return owners.has(self_) ? absl::OkStatus() : Elsewhere("group", group, owners.send);
}

uint32_t ShardMap::UserOwner(absl::string_view user_id) const {
  return chat::UserShard(user_id, count());
}

absl::Status ShardMap::CheckUser(absl::string_view user_id) const {
  if (UserOwner(user_id) == self_) return absl::OkStatus();
  // While resharding, an edge on the other list counts a user where that
  // list places it.
  if (bridge_ > 0 && chat::UserShard(user_id, bridge_) == self_) return absl::OkStatus();
  return Elsewhere("user", user_id, UserOwner(user_id));
}

absl::Status ShardMap::CheckChannel(absl::string_view channel) const {
  const chat::Owners owners = ChannelOwners(channel);
  return owners.has(self_) ? absl::OkStatus() : Elsewhere("channel", channel, owners.send);
}

}  // namespace groupsvc
