// Placement (shared/placement.h): the fixed vectors of
// tests/vectors/placement.json (which the Python layer's tests check too), and
// the consistent-hash properties resharding relies on.
#include "shared/placement.h"

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

boost::json::value Vectors() {
  std::ifstream in(CHAT_SOURCE_DIR "/tests/vectors/placement.json");
  std::stringstream text;
  text << in.rdbuf();
  return boost::json::parse(text.str());
}

uint32_t U32(const boost::json::value& v) { return static_cast<uint32_t>(v.to_number<int64_t>()); }

TEST(PlacementTest, FixedHashVectors) {
  const boost::json::value doc = Vectors();
  const boost::json::array& counts = doc.at("counts").as_array();
  const boost::json::array& vectors = doc.at("hash").as_array();
  ASSERT_GE(vectors.size(), 5u);
  EXPECT_EQ(Fnv1a64(""), 14695981039346656037ull);
  for (const boost::json::value& v : vectors) {
    const std::string key(v.at("key").as_string());
    EXPECT_EQ(absl::StrCat(absl::Hex(Fnv1a64(key), absl::kZeroPad16)),
              std::string(v.at("fnv1a64").as_string()))
        << key;
    for (size_t i = 0; i < counts.size(); ++i) {
      EXPECT_EQ(GroupShard(key, U32(counts[i])), U32(v.at("shard").at(i)))
          << key << " among " << counts[i];
    }
  }
}

TEST(PlacementTest, FixedOwnerVectorsWhileBridging) {
  const boost::json::value doc = Vectors();
  const boost::json::array& vectors = doc.at("owners").as_array();
  ASSERT_GE(vectors.size(), 20u);
  int split = 0;
  for (const boost::json::value& v : vectors) {
    const std::string name(v.at("name").as_string());
    std::vector<uint32_t> not_bridging;
    for (const boost::json::value& s : v.at("not_bridging").as_array())
      not_bridging.push_back(U32(s));
    auto bridging = [&](uint32_t shard) {
      return std::find(not_bridging.begin(), not_bridging.end(), shard) == not_bridging.end();
    };
    const Owners o = v.at("kind").as_string() == "group"
                         ? GroupOwners(name, U32(v.at("shards")), U32(v.at("bridge")), bridging)
                         : ChannelOwners(name, U32(v.at("shards")), U32(v.at("bridge")), bridging);
    const std::string what = boost::json::serialize(v);
    EXPECT_EQ(o.own, U32(v.at("own"))) << what;
    EXPECT_EQ(o.bridged, U32(v.at("bridged"))) << what;
    EXPECT_EQ(o.send, U32(v.at("send"))) << what;
    EXPECT_EQ(o.count(), o.own == o.bridged ? 1 : 2) << what;
    if (o.count() == 2) ++split;
  }
  EXPECT_GE(split, 5) << "the vectors must include groups the two counts place apart";
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
