// ShardMap (this groupsvc's place among the shards) and what ApplyCommand does
// with a command for a group placed on another shard.
#include "groupsvc/shards/shard_map.h"

#include <string>

#include "gmock/gmock.h"
#include "groupsvc/rpc/commands.h"
#include "gtest/gtest.h"
#include "shared/clock.h"
#include "shared/placement.h"

namespace groupsvc {
namespace {

using ::testing::HasSubstr;

const std::vector<std::string> kThree = {"a:1", "b:1", "c:1"};

TEST(ShardMapTest, WithoutShardsEverythingIsPlacedHere) {
  absl::StatusOr<ShardMap> map = ShardMap::Make({}, "0");
  ASSERT_TRUE(map.ok());
  EXPECT_FALSE(map->sharded());
  EXPECT_EQ(map->count(), 1u);
  EXPECT_TRUE(map->OwnsGroup("chat_anything"));
  EXPECT_FALSE(ShardMap::Make({}, "2").ok());
}

TEST(ShardMapTest, TheIndexIsANumberInRangeOrTheHostNamesOrdinal) {
  EXPECT_EQ(ShardMap::Make(kThree, "2")->self(), 2u);
  EXPECT_EQ(ShardMap::Make(kThree, "auto", "groupsvc-1")->self(), 1u);
  EXPECT_EQ(ShardMap::Make(kThree, "3").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShardMap::Make(kThree, "x").status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status no_ordinal = ShardMap::Make(kThree, "auto", "laptop").status();
  EXPECT_THAT(no_ordinal.message(), HasSubstr("ordinal"));
}

TEST(ShardMapTest, PlacementFollowsTheSharedFunctionAndNamesTheOwner) {
  absl::StatusOr<ShardMap> map = ShardMap::Make(kThree, "0");
  ASSERT_TRUE(map.ok());
  int elsewhere = 0;
  for (int i = 0; i < 30; ++i) {
    const std::string group = "chat_room" + std::to_string(i);
    const uint32_t owner = chat::GroupShard(group, 3);
    EXPECT_EQ(map->GroupOwner(group), owner);
    absl::Status s = map->CheckGroup(group);
    if (owner == 0) {
      EXPECT_TRUE(s.ok());
    } else {
      ++elsewhere;
      EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(s.message(), HasSubstr(kThree[owner]));
    }
  }
  EXPECT_GT(elsewhere, 0);
  EXPECT_EQ(map->ChannelOwner("edge-1.ab!c1"), chat::GroupShard("edge-1.ab!", 3));
}

TEST(ShardMapTest, WhileBridgingEitherCountsPlacementIsAcceptedAndUnaryCallsGoByTheBridge) {
  EXPECT_EQ(ShardMap::Make(kThree, "0", "", 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShardMap::Make({}, "0", "", 1).status().code(), absl::StatusCode::kInvalidArgument);
  // Growing 2 -> 3: a group that moved to shard 2 is still accepted where two
  // shards place it, and refused on the third shard of neither placement.
  std::string moved;
  for (int i = 0; moved.empty(); ++i) {
    const std::string g = "chat_g" + std::to_string(i);
    if (chat::GroupShard(g, 3) == 2) moved = g;
  }
  const uint32_t old_owner = chat::GroupShard(moved, 2);
  for (uint32_t self = 0; self < 3; ++self) {
    absl::StatusOr<ShardMap> map = ShardMap::Make(kThree, std::to_string(self), "", 2);
    ASSERT_TRUE(map.ok());
    EXPECT_TRUE(map->sharded());
    EXPECT_EQ(map->bridge(), 2u);
    EXPECT_EQ(map->CheckGroup(moved).ok(), self == 2 || self == old_owner) << self;
    // Unary calls go where every member is during the change: the old count's owner.
    EXPECT_EQ(map->GroupOwner(moved), old_owner);
  }
  // Without the bridge, the new placement alone.
  absl::StatusOr<ShardMap> after = ShardMap::Make(kThree, std::to_string(old_owner));
  EXPECT_EQ(after->CheckGroup(moved).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ShardMapTest, ACommandForAnotherShardsGroupIsRefusedAndChangesNothing) {
  absl::StatusOr<ShardMap> map = ShardMap::Make(kThree, "0");
  ASSERT_TRUE(map.ok());
  std::string mine, theirs;
  for (int i = 0; mine.empty() || theirs.empty(); ++i) {
    const std::string group = "chat_room" + std::to_string(i);
    (map->OwnsGroup(group) ? mine : theirs) = group;
  }
  chat::FakeClock clock;
  RegistryOptions options;
  options.warmup = absl::ZeroDuration();
  GroupRegistry registry(options, &clock);
  v1::Command add;
  add.set_request_id(7);
  add.mutable_group_add()->set_group(theirs);
  add.mutable_group_add()->set_channel("edge-1.ab!q");
  v1::Ack ack = ApplyCommand(registry, add, nullptr, &*map);
  EXPECT_EQ(ack.request_id(), 7u);
  EXPECT_EQ(ack.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ack.message(), HasSubstr("--shards"));
  EXPECT_EQ(registry.Stats().memberships, 0u);
  add.mutable_group_add()->set_group(mine);
  EXPECT_EQ(ApplyCommand(registry, add, nullptr, &*map).code(), 0);
  // A queued channel (no '!') of another shard joins too: its copies wait
  // here for a Receive with this_shard.
  std::string away;
  for (int i = 0; away.empty(); ++i) {
    const std::string channel = "worker-" + std::to_string(i);
    if (!map->OwnsChannel(channel)) away = channel;
  }
  add.mutable_group_add()->set_group(mine);
  add.mutable_group_add()->set_channel(away);
  EXPECT_EQ(ApplyCommand(registry, add, nullptr, &*map).code(), 0);
  // An invalid name is refused for its rule, wherever it would be placed.
  add.mutable_group_add()->set_group("bad name");
  EXPECT_EQ(ApplyCommand(registry, add, nullptr, &*map).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace groupsvc
