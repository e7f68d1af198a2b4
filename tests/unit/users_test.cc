// The users placed on a shard: the Users table alone, then through the
// registry and the stream's commands (cap, edge loss, operators' closes).
#include "groupsvc/registry/users.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "groupsvc/registry/group_registry.h"
#include "groupsvc/rpc/commands.h"
#include "gtest/gtest.h"

namespace groupsvc {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

UserConnection Conn(std::string user, std::string channel, absl::Time since = absl::UnixEpoch(),
                    std::string room = "lobby") {
  return UserConnection{user, "Name of " + user, channel, "edge-1", room, since};
}

std::vector<std::string> Channels(const std::vector<UserConnection>& list) {
  std::vector<std::string> out;
  for (const auto& c : list) out.push_back(c.channel);
  return out;
}

TEST(UsersTest, TheCapCountsTheUsersConnectionsAndSaysWhyItRefuses) {
  Users users(100);
  uint32_t count = 0;
  ASSERT_TRUE(users.Connect(Conn("u1", "e.a!c1"), 2, &count).ok());
  EXPECT_EQ(count, 1u);
  ASSERT_TRUE(users.Connect(Conn("u1", "e.b!c1"), 2, &count).ok());
  EXPECT_EQ(count, 2u);
  absl::Status third = users.Connect(Conn("u1", "e.a!c2"), 2, &count);
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.message(), HasSubstr("user \"u1\" already has 2 connections"));
  EXPECT_THAT(third.message(), HasSubstr("--max_connections_per_user=2"));
  // Another user is not affected; no cap (a replay) is never refused.
  EXPECT_TRUE(users.Connect(Conn("u2", "e.a!c3"), 2).ok());
  EXPECT_TRUE(users.Connect(Conn("u1", "e.a!c2"), 0).ok());
  EXPECT_EQ(users.connections(), 4u);
  EXPECT_EQ(users.users(), 2u);
}

TEST(UsersTest, TheSameConnectionAgainIsNotCountedTwiceAndKeepsItsSince) {
  Users users(100);
  ASSERT_TRUE(users.Connect(Conn("u1", "e.a!c1", absl::FromUnixSeconds(10)), 1).ok());
  EXPECT_TRUE(users.Connect(Conn("u1", "e.a!c1", absl::FromUnixSeconds(20)), 1).ok());
  std::vector<UserConnection> list = users.Find("u1");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].since, absl::FromUnixSeconds(10));
}

TEST(UsersTest, AnEdgesConnectionsGoWithItsOwnerPrefix) {
  Users users(100);
  ASSERT_TRUE(users.Connect(Conn("u1", "edge-1.aaaa!c1"), 0).ok());
  ASSERT_TRUE(users.Connect(Conn("u1", "edge-2.bbbb!c1"), 0).ok());
  ASSERT_TRUE(users.Connect(Conn("u2", "edge-1.aaaa!c2"), 0).ok());
  EXPECT_EQ(users.RemoveOwner("aaaa!"), 2u);
  EXPECT_THAT(Channels(users.Find("u1")), ElementsAre("edge-2.bbbb!c1"));
  EXPECT_THAT(users.Find("u2"), IsEmpty());
  EXPECT_EQ(users.users(), 1u);
}

TEST(UsersTest, FindListsOldestFirstAndDisconnectTakesOnlyTheUsersOwn) {
  Users users(100);
  ASSERT_TRUE(users.Connect(Conn("u1", "e.a!c2", absl::FromUnixSeconds(20)), 0).ok());
  ASSERT_TRUE(users.Connect(Conn("u1", "e.a!c1", absl::FromUnixSeconds(10)), 0).ok());
  EXPECT_THAT(Channels(users.Find("u1")), ElementsAre("e.a!c1", "e.a!c2"));
  EXPECT_FALSE(users.Disconnect("u2", "e.a!c1"));
  EXPECT_TRUE(users.Disconnect("u1", "e.a!c1"));
  EXPECT_FALSE(users.Disconnect("u1", "e.a!c1"));
  EXPECT_THAT(Channels(users.Find("u1")), ElementsAre("e.a!c2"));
  // The edge's index follows: its loss takes what is left, and only that.
  EXPECT_EQ(users.RemoveOwner("a!"), 1u);
  EXPECT_EQ(users.connections(), 0u);
  EXPECT_EQ(users.users(), 0u);
}

TEST(UsersTest, AChannelRegisteredAgainUnderAnotherUserMovesToIt) {
  Users users(100);
  ASSERT_TRUE(users.Connect(Conn("u1", "e.a!c1"), 0).ok());
  ASSERT_TRUE(users.Connect(Conn("u2", "e.a!c1"), 0).ok());
  EXPECT_THAT(users.Find("u1"), IsEmpty());
  EXPECT_EQ(users.Find("u2").size(), 1u);
  EXPECT_EQ(users.connections(), 1u);
  EXPECT_EQ(users.RemoveOwner("a!"), 1u);
}

TEST(UsersTest, TheTableIsBounded) {
  Users users(2);
  ASSERT_TRUE(users.Connect(Conn("u1", "e.a!c1"), 0).ok());
  ASSERT_TRUE(users.Connect(Conn("u2", "e.a!c2"), 0).ok());
  absl::Status s = users.Connect(Conn("u3", "e.a!c3"), 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("at most 2 user connections"));
  EXPECT_EQ(users.users(), 2u);
  EXPECT_TRUE(users.Disconnect("u2", "e.a!c2"));
  EXPECT_TRUE(users.Connect(Conn("u3", "e.a!c3"), 0).ok());
}

// ------------------------------------------------------- through the registry

class ClosingEdge : public EdgeSink {
 public:
  bool Deliver(const EventPtr&, std::vector<std::string>, absl::string_view, uint64_t,
               absl::string_view) override {
    return true;
  }
  void Replaced() override {}
  bool CloseUser(const UserClose& close) override {
    if (gone) return false;
    closes.push_back(close);
    return true;
  }
  std::vector<UserClose> closes;
  bool gone = false;  // Its stream ended: it takes nothing more.
};

class RegistryUsersTest : public ::testing::Test {
 protected:
  RegistryUsersTest() : registry_(RegistryOptions{}, &clock_) {}

  std::shared_ptr<ClosingEdge> Attach(const std::string& id, const std::string& prefix) {
    auto edge = std::make_shared<ClosingEdge>();
    absl::StatusOr<Attachment> a =
        registry_.AttachEdge(AttachRequest{id, prefix, "incarnation-of-" + id, ""}, edge);
    EXPECT_TRUE(a.ok()) << a.status();
    generations_[id] = a.ok() ? a->generation : 0;
    return edge;
  }
  v1::Ack Connect(const std::string& edge_id, const std::string& user, const std::string& channel,
                  uint32_t cap) {
    v1::Command command;
    command.set_request_id(7);
    command.mutable_user_connect()->mutable_user()->set_id(user);
    command.mutable_user_connect()->set_channel(channel);
    command.mutable_user_connect()->set_room("lobby");
    command.mutable_user_connect()->set_max_connections(cap);
    return ApplyCommand(registry_, command, nullptr, nullptr, edge_id);
  }

  chat::FakeClock clock_;
  GroupRegistry registry_;
  std::map<std::string, uint64_t> generations_;
};

TEST_F(RegistryUsersTest, TheCapHoldsAcrossEdgesAndALostEdgesConnectionsFallAtOnce) {
  Attach("edge-1", "edge-1.aaaa!");
  Attach("edge-2", "edge-2.bbbb!");
  EXPECT_EQ(Connect("edge-1", "u1", "edge-1.aaaa!c1", 2).code(), 0);
  v1::Ack second = Connect("edge-2", "u1", "edge-2.bbbb!c1", 2);
  EXPECT_EQ(second.code(), 0);
  EXPECT_EQ(second.user_connections(), 2u);
  v1::Ack third = Connect("edge-2", "u1", "edge-2.bbbb!c2", 2);
  EXPECT_EQ(third.code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(third.request_id(), 7u);
  EXPECT_THAT(third.message(), HasSubstr("already has 2 connections"));
  // edge-1 crashes: its connection no longer counts, so the user gets in.
  registry_.DetachEdge("edge-1", generations_["edge-1"], DetachReason::kLost);
  EXPECT_EQ(Connect("edge-2", "u1", "edge-2.bbbb!c2", 2).code(), 0);
  EXPECT_THAT(Channels(registry_.GetUser("u1")), ElementsAre("edge-2.bbbb!c1", "edge-2.bbbb!c2"));
}

TEST_F(RegistryUsersTest, AnEdgeRegistersOnlyItsOwnChannelsAndAUserNeedsAnId) {
  Attach("edge-1", "edge-1.aaaa!");
  Attach("edge-2", "edge-2.bbbb!");
  v1::Ack other = Connect("edge-1", "u1", "edge-2.bbbb!c1", 0);
  EXPECT_EQ(other.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(other.message(), HasSubstr("is not owned by edge \"edge-1\""));
  EXPECT_EQ(Connect("edge-1", "", "edge-1.aaaa!c1", 0).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Connect("edge-1", std::string(300, 'u'), "edge-1.aaaa!c1", 0).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(registry_.Stats().user_connections, 0u);
}

TEST_F(RegistryUsersTest, ADisconnectTellsEachEdgeOnceAndForgetsTheConnections) {
  auto edge1 = Attach("edge-1", "edge-1.aaaa!");
  auto edge2 = Attach("edge-2", "edge-2.bbbb!");
  Connect("edge-1", "u1", "edge-1.aaaa!c1", 0);
  Connect("edge-1", "u1", "edge-1.aaaa!c2", 0);
  Connect("edge-2", "u1", "edge-2.bbbb!c1", 0);
  Connect("edge-2", "u2", "edge-2.bbbb!c2", 0);
  absl::StatusOr<UserClose> close = CloseOf("u1", "", 0, "");
  ASSERT_TRUE(close.ok());
  EXPECT_EQ(registry_.CloseUser(*close), 3u);
  ASSERT_EQ(edge1->closes.size(), 1u);
  ASSERT_EQ(edge2->closes.size(), 1u);
  EXPECT_EQ(edge1->closes[0].code, 4010u);
  EXPECT_EQ(edge1->closes[0].reason, "disconnected by an operator");
  EXPECT_THAT(registry_.GetUser("u1"), IsEmpty());
  EXPECT_EQ(registry_.GetUser("u2").size(), 1u);
}

TEST_F(RegistryUsersTest, AnEdgeThatCannotTakeTheCloseKeepsItsConnections) {
  auto edge1 = Attach("edge-1", "edge-1.aaaa!");
  auto edge2 = Attach("edge-2", "edge-2.bbbb!");
  Connect("edge-1", "u1", "edge-1.aaaa!c1", 0);
  Connect("edge-2", "u1", "edge-2.bbbb!c1", 0);
  edge2->gone = true;
  absl::StatusOr<UserClose> close = CloseOf("u1", "", 0, "");
  ASSERT_TRUE(close.ok());
  EXPECT_EQ(registry_.CloseUser(*close), 1u);  // Only what edge-1 took.
  EXPECT_THAT(Channels(registry_.GetUser("u1")), ElementsAre("edge-2.bbbb!c1"));
}

TEST_F(RegistryUsersTest, AnEdgeEndsOnlyItsOwnConnections) {
  Attach("edge-1", "edge-1.aaaa!");
  Attach("edge-2", "edge-2.bbbb!");
  Connect("edge-1", "u1", "edge-1.aaaa!c1", 0);
  v1::Command command;
  command.mutable_user_disconnect()->set_user_id("u1");
  command.mutable_user_disconnect()->set_channel("edge-1.aaaa!c1");
  v1::Ack foreign = ApplyCommand(registry_, command, nullptr, nullptr, "edge-2");
  EXPECT_EQ(foreign.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(registry_.GetUser("u1").size(), 1u);
  EXPECT_EQ(ApplyCommand(registry_, command, nullptr, nullptr, "edge-1").code(), 0);
  EXPECT_THAT(registry_.GetUser("u1"), IsEmpty());
}

TEST_F(RegistryUsersTest, ARemovalFromAGroupTellsTheEdgesAndKeepsTheCountUntilTheyClose) {
  auto edge1 = Attach("edge-1", "edge-1.aaaa!");
  Connect("edge-1", "u1", "edge-1.aaaa!c1", 0);
  absl::StatusOr<UserClose> close = CloseOf("u1", "chat_lobby", 0, "be nice");
  ASSERT_TRUE(close.ok());
  EXPECT_EQ(registry_.CloseUser(*close), 1u);  // One edge told.
  ASSERT_EQ(edge1->closes.size(), 1u);
  EXPECT_EQ(edge1->closes[0].group, "chat_lobby");
  EXPECT_EQ(edge1->closes[0].code, 4011u);
  EXPECT_EQ(edge1->closes[0].reason, "be nice");
  // Only the edge knows which connections are in the group: they leave
  // when it reports them closed.
  EXPECT_EQ(registry_.GetUser("u1").size(), 1u);
}

TEST(CloseOfTest, CodesAndReasonsAreChecked) {
  EXPECT_EQ(CloseOf("u1", "", 1000, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CloseOf("u1", "", 5000, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CloseOf("u1", "", 4000, std::string(124, 'r')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CloseOf("", "", 0, "").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<UserClose> ok = CloseOf("u1", "", 4321, std::string(123, 'r'));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->code, 4321u);
}

TEST_F(RegistryUsersTest, AnOperatorsDiscardEndsTheUsersPresenceWithoutTheDebounce) {
  Attach("edge-1", "edge-1.aaaa!");
  PresenceUser ann{"u1", "Ann"};
  ASSERT_TRUE(registry_.GroupAdd("chat_lobby", "edge-1.aaaa!c1", &ann).ok());
  ASSERT_TRUE(registry_.GroupAdd("chat_other", "edge-1.aaaa!c1", &ann).ok());
  ASSERT_TRUE(registry_.GroupDiscard("chat_lobby", "edge-1.aaaa!c1", /*leave_now=*/true).ok());
  ASSERT_TRUE(registry_.GroupDiscard("chat_other", "edge-1.aaaa!c1").ok());
  clock_.Advance(absl::Milliseconds(1));
  registry_.AnnouncePresence();
  EXPECT_THAT(registry_.GetPresence("chat_lobby")->members, IsEmpty());
  // Without it the user is listed for the debounce (a page may come back).
  EXPECT_EQ(registry_.GetPresence("chat_other")->members.size(), 1u);
}

}  // namespace
}  // namespace groupsvc
