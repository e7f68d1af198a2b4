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

TEST(NamesTest, OwnerPrefixIsTheClientPartBeforeTheBang) {
  EXPECT_EQ(ChannelOwnerPrefix("edge-1!c7"), "edge-1!");
  EXPECT_EQ(ChannelOwnerPrefix("edge-1!"), "edge-1!");
  EXPECT_EQ(ChannelOwnerPrefix("plain"), "");
  EXPECT_EQ(ChannelOwnerPrefix("plain.dotted"), "");
  // Channels' new_channel(prefix): any prefix, one client part.
  EXPECT_EQ(ChannelOwnerPrefix("specific.py3f9a!0c1d"), "py3f9a!");
  EXPECT_EQ(ChannelOwnerPrefix("websocket.send.py3f9a!x"), "py3f9a!");
  EXPECT_EQ(ChannelOwnerPrefix("edge-0.k2x9q1!c1"), "k2x9q1!");
}

}  // namespace
}  // namespace chat
