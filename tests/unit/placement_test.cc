// Placement (shared/placement.h): fixed vectors, so that any other
// implementation (the Python layer, a script) can check itself against these,
// and the consistent-hash properties resharding relies on.
#include "shared/placement.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

struct Vector {
  const char* key;
  uint64_t fnv;
  uint32_t shard[7];  // Among 1, 2, 3, 4, 5, 8 and 16 shards.
};
constexpr uint32_t kCounts[7] = {1, 2, 3, 4, 5, 8, 16};

TEST(PlacementTest, FixedVectors) {
  const Vector vectors[] = {
      {"chat_lobby", 0x95f1cff03c23c7fcull, {0, 0, 0, 0, 0, 0, 0}},
      {"chat_room1", 0x8f695e36139ed8e2ull, {0, 0, 2, 2, 2, 2, 2}},
      {"chat_room2", 0x8f695d36139ed72full, {0, 0, 0, 3, 4, 6, 6}},
      {"chat_x", 0xf363e0031b1b7f8cull, {0, 1, 1, 3, 3, 3, 3}},
      {"chat_general", 0x2728a2a9a01317d4ull, {0, 1, 1, 1, 4, 5, 5}},
      {"a", 0xaf63dc4c8601ec8cull, {0, 1, 2, 2, 2, 2, 12}},
      {"edge-1.ab12cd!", 0x80f3362bebf93126ull, {0, 1, 2, 2, 2, 2, 2}},
  };
  EXPECT_EQ(Fnv1a64(""), 14695981039346656037ull);
  for (const Vector& v : vectors) {
    EXPECT_EQ(Fnv1a64(v.key), v.fnv) << v.key;
    for (int i = 0; i < 7; ++i) {
      EXPECT_EQ(GroupShard(v.key, kCounts[i]), v.shard[i]) << v.key << " among " << kCounts[i];
    }
  }
}

TEST(PlacementTest, AProcessLocalChannelGoesWithItsOwnerPrefix) {
  for (uint32_t n : {2u, 3u, 7u}) {
    EXPECT_EQ(ChannelShard("edge-1.ab12cd!c1", n), GroupShard("ab12cd!", n));
    EXPECT_EQ(ChannelShard("edge-1.ab12cd!zz", n), ChannelShard("edge-1.ab12cd!c1", n));
    EXPECT_EQ(ChannelShard("plain-channel", n), GroupShard("plain-channel", n));
  }
}

TEST(PlacementTest, AUserIsPlacedByItsIdAsAGroupByItsName) {
  // "chat_room2" among 5 is shard 4 in the vectors above.
  EXPECT_EQ(UserShard("chat_room2", 5), 4u);
  for (uint32_t n : {1u, 2u, 3u, 7u}) EXPECT_EQ(UserShard("u-17", n), GroupShard("u-17", n));
}

TEST(PlacementTest, GrowingByOneMovesAboutOneNthAndOnlyToTheNewShard) {
  for (uint32_t n = 1; n <= 8; ++n) {
    int moved = 0;
    std::vector<int> per_shard(n + 1, 0);
    for (int i = 0; i < 10000; ++i) {
      const std::string group = absl::StrCat("chat_room", i);
      const uint32_t before = GroupShard(group, n);
      const uint32_t after = GroupShard(group, n + 1);
      ASSERT_LT(after, n + 1);
      if (before != after) {
        ++moved;
        EXPECT_EQ(after, n) << group << ": a key moves only to the new shard";
      }
      ++per_shard[after];
    }
    const double expected = 10000.0 / (n + 1);
    EXPECT_NEAR(moved, expected, expected * 0.15) << n << " -> " << n + 1;
    for (int count : per_shard) EXPECT_NEAR(count, expected, expected * 0.15);
  }
}

}  // namespace
}  // namespace chat
