#include "shared/names.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chat {
namespace {

TEST(NamesTest, AcceptsChannelsGroupNames) {
  EXPECT_TRUE(ValidateGroupName("chat_lobby").ok());
  EXPECT_TRUE(ValidateGroupName("a.b-c_D9").ok());
  EXPECT_TRUE(ValidateGroupName(std::string(99, 'x')).ok());
}

TEST(NamesTest, RefusesBadGroupNamesWithTheRule) {
  for (const std::string& bad : std::vector<std::string>{
           "", "has space", "uni\xc3\xa9", "semi;colon", "a!b", "trail\n", std::string(100, 'x')}) {
    absl::Status s = ValidateGroupName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("ASCII letters, digits, hyphens, underscores or periods"),
              absl::string_view::npos);
  }
}

TEST(NamesTest, ChannelNamesMayHoldOneBang) {
  EXPECT_TRUE(ValidateChannelName("abc").ok());
  EXPECT_TRUE(ValidateChannelName("abc!").ok());
  EXPECT_TRUE(ValidateChannelName("specific.x1!Yz_9").ok());
  for (const std::string& bad :
       std::vector<std::string>{"!b", "a!b!c", "a!b c", "", std::string(100, 'c'), "a!\xc3\xa9"}) {
    absl::Status s = ValidateChannelName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("Channel name"), absl::string_view::npos);
  }
}

TEST(NamesTest, OwnerPrefixIsUpToTheBang) {
  EXPECT_EQ(ChannelOwnerPrefix("edge-1!c7"), "edge-1!");
  EXPECT_EQ(ChannelOwnerPrefix("edge-1!"), "edge-1!");
  EXPECT_EQ(ChannelOwnerPrefix("plain"), "");
}

}  // namespace
}  // namespace chat
