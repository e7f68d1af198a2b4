// Users across the fleet: three groupsvc shards behind two edges (real
// binaries, real WebSockets and gRPC), signed-in users with HS256 tokens.
// The per-user cap (--max_connections_per_user) holds across both edges and
// falls when an edge crashes; an operator's GetUser, RemoveFromGroup and
// Disconnect work through every shard and close the right sockets with the
// code and reason given, and the user's presence leaves at once.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "groupsvc/v1/layer.grpc.pb.h"
#include "gtest/gtest.h"
#include "shared/placement.h"
#include "tests/support/child_process.h"
#include "tests/support/http_get.h"
#include "tests/support/ports.h"
#include "tests/support/ws_client.h"

namespace chat::testing {
namespace {

namespace v1 = ::groupsvc::v1;
using ::testing::HasSubstr;

constexpr uint32_t kShards = 3;
constexpr uint32_t kCap = 2;

class UsersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A folder of this test's own: CTest runs the tests of this file side by side.
    std::string dir = absl::StrCat(::testing::TempDir(), "/users-e2e-XXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    secret_ = absl::StrCat(dir_, "/secret");
    FILE* f = fopen(secret_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("users-e2e-secret-0123456789abcdef0123\n", f);
    fclose(f);
    for (uint32_t i = 0; i < kShards; ++i) ports_.push_back(FreeLoopbackPort());
    for (uint32_t i = 0; i < kShards; ++i) {
      shards_.push_back(StartShard(i));
      ASSERT_NE(shards_.back(), nullptr);
    }
    edge_a_ = StartEdge("edge-a", &port_a_);
    edge_b_ = StartEdge("edge-b", &port_b_);
    ASSERT_NE(edge_a_, nullptr);
    ASSERT_NE(edge_b_, nullptr);
    ann_ = Mint("ann:Ann");
    bob_ = Mint("bob:Bob");
  }

  void TearDown() override {
    edge_a_.reset();
    edge_b_.reset();
    shards_.clear();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string Address(uint32_t i) const { return absl::StrCat("127.0.0.1:", ports_[i]); }
  std::string ShardList() const {
    std::vector<std::string> all;
    for (uint32_t i = 0; i < kShards; ++i) all.push_back(Address(i));
    return absl::StrJoin(all, ",");
  }

  std::unique_ptr<ChildProcess> StartShard(uint32_t i) {
    auto p = ChildProcess::Start(
        {GROUPSVC_BIN, absl::StrCat("--listen=", Address(i)), "--metrics_listen=", "--warmup=0s",
         absl::StrCat("--shards=", ShardList()), absl::StrCat("--shard_index=", i)});
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    EXPECT_TRUE((*p)->WaitForLine(" listening ", absl::Seconds(20)).ok()) << (*p)->Output();
    return *std::move(p);
  }

  std::unique_ptr<ChildProcess> StartEdge(const std::string& id, int* port) {
    auto p = ChildProcess::Start({EDGE_BIN, "--listen=127.0.0.1:0",
                                  "--metrics_listen=", absl::StrCat("--groupsvc=", ShardList()),
                                  absl::StrCat("--edge_id=", id),
                                  absl::StrCat("--jwt_secret_file=", secret_),
                                  absl::StrCat("--max_connections_per_user=", kCap)});
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    absl::StatusOr<int> got = (*p)->WaitForField(" listening ", "port", absl::Seconds(20));
    EXPECT_TRUE(got.ok()) << got.status();
    *port = got.value_or(0);
    for (uint32_t i = 0; i < kShards; ++i) {
      EXPECT_TRUE(
          (*p)->WaitForLine(absl::StrCat("layer_up target=", Address(i)), absl::Seconds(10)).ok())
          << (*p)->Output();
    }
    return *std::move(p);
  }

  // A token for "id:Name" from the edge's own minting tool.
  std::string Mint(const std::string& who) {
    const std::string out = absl::StrCat(dir_, "/token");
    const std::string mint =
        absl::StrCat(EDGE_BIN, " --jwt_secret_file=", secret_, " --mint_token=", who, " > ", out);
    EXPECT_EQ(system(mint.c_str()), 0);
    char buffer[2048] = {};
    FILE* f = fopen(out.c_str(), "r");
    if (f == nullptr || fgets(buffer, sizeof(buffer), f) == nullptr) ADD_FAILURE() << "no token";
    if (f != nullptr) fclose(f);
    return std::string(absl::StripAsciiWhitespace(buffer));
  }

  absl::StatusOr<std::unique_ptr<WsClient>> Open(int port, const std::string& room,
                                                 const std::string& token) {
    return WsClient::Connect(port, absl::StrCat("/ws/chat/", room, "/?token=", token));
  }
  std::unique_ptr<WsClient> OpenOk(int port, const std::string& room, const std::string& token) {
    auto c = Open(port, room, token);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  std::unique_ptr<v1::ChannelLayer::Stub> Stub(uint32_t shard) const {
    return v1::ChannelLayer::NewStub(
        grpc::CreateChannel(Address(shard), grpc::InsecureChannelCredentials()));
  }
  v1::GetUserResponse GetUser(uint32_t shard, const std::string& id) {
    grpc::ClientContext context;
    v1::GetUserRequest request;
    request.set_user_id(id);
    v1::GetUserResponse response;
    grpc::Status s = Stub(shard)->GetUser(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }
  // Polls GetUser (through shard 0) until `id` has `n` connections.
  bool WaitConnections(const std::string& id, int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      if (GetUser(0, id).connections_size() == n) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }
  int PresenceCount(const std::string& group) {
    grpc::ClientContext context;
    v1::GetPresenceRequest request;
    request.set_group(group);
    v1::GetPresenceResponse response;
    EXPECT_TRUE(Stub(0)->GetPresence(&context, request, &response).ok());
    return response.members_size();
  }

  std::string dir_;
  std::string secret_;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<ChildProcess>> shards_;
  std::unique_ptr<ChildProcess> edge_a_, edge_b_;
  int port_a_ = 0, port_b_ = 0;
  std::string ann_, bob_;
};

TEST_F(UsersTest, TheCapHoldsAcrossEdgesAndAnEdgeCrashFreesItsConnectionsAtOnce) {
  auto a1 = OpenOk(port_a_, "lobby", ann_);
  auto b1 = OpenOk(port_b_, "garden", ann_);
  ASSERT_TRUE(a1 && b1);
  // A third, on either edge: 429 with the reason.
  for (int port : {port_a_, port_b_}) {
    auto third = Open(port, "lobby", ann_);
    ASSERT_FALSE(third.ok());
    EXPECT_EQ(WsClient::RefusedStatus(third.status()), 429) << third.status();
    EXPECT_THAT(third.status().message(), HasSubstr("user \"ann\" already has 2 connections"));
  }
  // The cap is per user.
  auto bob = OpenOk(port_a_, "lobby", bob_);
  ASSERT_NE(bob, nullptr);
  // A page closed: its place is free again.
  a1->Close();
  ASSERT_TRUE(WaitConnections("ann", 1));
  a1 = OpenOk(port_a_, "lobby", ann_);
  ASSERT_NE(a1, nullptr);
  // edge-b crashes with one of Ann's: she may reconnect at once.
  edge_b_->Signal(SIGKILL);
  edge_b_->WaitExit(absl::Seconds(5));
  ASSERT_TRUE(WaitConnections("ann", 1));
  auto again = OpenOk(port_a_, "garden", ann_);
  ASSERT_NE(again, nullptr);
  EXPECT_THAT(edge_a_->Output(), HasSubstr("ws_user_cap"));
}

TEST_F(UsersTest, ARestartedShardRebuildsTheCountsFromTheEdgesReplays) {
  auto a1 = OpenOk(port_a_, "lobby", ann_);
  auto b1 = OpenOk(port_b_, "garden", ann_);
  ASSERT_TRUE(a1 && b1);
  ASSERT_TRUE(WaitConnections("ann", 2));
  // When each opened, by channel: the replay after the restart says it again.
  absl::flat_hash_map<std::string, int64_t> since;
  const v1::GetUserResponse before = GetUser(0, "ann");
  for (const v1::UserConnection& c : before.connections()) {
    since[c.channel()] = c.since().seconds() * 1'000'000'000 + c.since().nanos();
  }
  ASSERT_EQ(since.size(), 2u);
  const uint32_t owner = chat::UserShard("ann", kShards);
  shards_[owner]->Signal(SIGKILL);
  shards_[owner]->WaitExit(absl::Seconds(5));
  // While Ann's shard is away, her third socket goes ahead unchecked.
  absl::SleepFor(absl::Milliseconds(300));
  auto unchecked = OpenOk(port_a_, "garden", ann_);
  ASSERT_NE(unchecked, nullptr);
  EXPECT_THAT(edge_a_->Output(), HasSubstr("ws_user_cap_unchecked"));
  shards_[owner] = StartShard(owner);
  ASSERT_NE(shards_[owner], nullptr);
  // Both edges reattach and count all three: the two replayed, and the one
  // opened meanwhile. Over the cap, nobody more gets in.
  ASSERT_TRUE(WaitConnections("ann", 3));
  const v1::GetUserResponse after = GetUser(0, "ann");
  for (const v1::UserConnection& c : after.connections()) {
    if (!since.contains(c.channel())) continue;  // The one opened meanwhile.
    EXPECT_EQ(c.since().seconds() * 1'000'000'000 + c.since().nanos(), since[c.channel()])
        << c.channel();
    since.erase(c.channel());
  }
  EXPECT_TRUE(since.empty());
  auto fourth = Open(port_b_, "lobby", ann_);
  ASSERT_FALSE(fourth.ok());
  EXPECT_EQ(WsClient::RefusedStatus(fourth.status()), 429) << fourth.status();
}

TEST_F(UsersTest, OperatorsFindRemoveAndDisconnectAUserThroughEveryShard) {
  auto lobby = OpenOk(port_a_, "lobby", ann_);
  auto garden = OpenOk(port_b_, "garden", ann_);
  ASSERT_TRUE(lobby && garden);
  ASSERT_TRUE(WaitConnections("ann", 2));
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    v1::GetUserResponse user = GetUser(shard, "ann");
    EXPECT_EQ(user.name(), "Ann") << "through shard " << shard;
    ASSERT_EQ(user.connections_size(), 2) << "through shard " << shard;
    std::vector<std::string> where;
    for (const auto& c : user.connections()) where.push_back(c.edge_id() + "/" + c.room());
    EXPECT_THAT(where, ::testing::UnorderedElementsAre("edge-a/lobby", "edge-b/garden"));
  }
  EXPECT_EQ(PresenceCount("chat_garden"), 1);

  // Removed from the garden through a shard that does not count Ann.
  const uint32_t owner = chat::UserShard("ann", kShards);
  {
    grpc::ClientContext context;
    v1::RemoveFromGroupRequest request;
    request.set_user_id("ann");
    request.set_group("chat_garden");
    request.set_reason("please stay in the lobby");
    v1::RemoveFromGroupResponse response;
    ASSERT_TRUE(Stub((owner + 1) % kShards)->RemoveFromGroup(&context, request, &response).ok());
    EXPECT_EQ(response.edges(), 2u);
  }
  absl::StatusOr<std::string> said = garden->Read();
  ASSERT_TRUE(said.ok()) << said.status();
  EXPECT_THAT(*said, HasSubstr(R"("message":"[disconnected] please stay in the lobby")"));
  ASSERT_EQ(garden->WaitClosed(), 4011);
  EXPECT_EQ(garden->close_reason(), "please stay in the lobby");
  // At once: within a tick, not after the presence debounce (3 s).
  const absl::Time left_by = absl::Now() + absl::Seconds(1);
  while (PresenceCount("chat_garden") != 0 && absl::Now() < left_by) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(PresenceCount("chat_garden"), 0);
  // The lobby stays open.
  ASSERT_TRUE(lobby->SendText(R"({"message":"still here"})"));
  absl::StatusOr<std::string> echo = lobby->Read();
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_THAT(*echo, HasSubstr("still here"));
  ASSERT_TRUE(WaitConnections("ann", 1));

  // Disconnected everywhere through another shard, with our own code.
  {
    grpc::ClientContext context;
    v1::DisconnectRequest request;
    request.set_user_id("ann");
    request.set_code(4100);
    request.set_reason("bye");
    v1::DisconnectResponse response;
    ASSERT_TRUE(Stub((owner + 2) % kShards)->Disconnect(&context, request, &response).ok());
    EXPECT_EQ(response.connections(), 1u);
  }
  ASSERT_EQ(lobby->WaitClosed(), 4100);
  EXPECT_EQ(lobby->close_reason(), "bye");
  EXPECT_EQ(GetUser(owner, "ann").connections_size(), 0);
  EXPECT_THAT(edge_a_->Output(), HasSubstr("ws_closed_by_operator"));
}

}  // namespace
}  // namespace chat::testing
