// groupsvc as three shards behind two edges: real binaries on loopback ports,
// real WebSockets and gRPC. Placement (shared/placement.h) decides which shard
// owns each room; the tests check that every process agrees, that grpcurl's
// calls work against any shard, and that a shard down takes down only its rooms.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
constexpr int kRooms = 30;

std::string Chat(const std::string& m) { return absl::StrCat(R"({"message":")", m, R"("})"); }
std::string Room(int i) { return absl::StrCat("room", i); }
std::string Group(int i) { return absl::StrCat("chat_room", i); }

std::unique_ptr<WsClient> Join(int port, const std::string& room) {
  auto c = WsClient::Connect(port, absl::StrCat("/ws/chat/", room, "/"));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

class ShardedTest : public ::testing::Test {
 protected:
  void SetUp() override { StartAll(kShards); }

  void StartAll(uint32_t count) {
    count_ = count;
    while (shard_ports_.size() < count) shard_ports_.push_back(FreeLoopbackPort());
    for (uint32_t i = 0; i < count; ++i) {
      shards_.push_back(StartShard(i));
      ASSERT_NE(shards_.back(), nullptr);
    }
    edge_a_ = StartEdge("edge-a", &port_a_, 1);
    edge_b_ = StartEdge("edge-b", &port_b_, 2);
    ASSERT_NE(edge_a_, nullptr);
    ASSERT_NE(edge_b_, nullptr);
    ASSERT_TRUE(WaitReady(port_a_, true));
    ASSERT_TRUE(WaitReady(port_b_, true));
    // Ready means one shard attached; wait for all of them.
    for (ChildProcess* edge : {edge_a_.get(), edge_b_.get()}) WaitAttached(*edge, 0);
  }

  void WaitAttached(ChildProcess& edge, size_t from_line) {
    for (uint32_t i = 0; i < count_; ++i) {
      ASSERT_TRUE(edge.WaitForLine(absl::StrCat("layer_up target=", Address(i)), absl::Seconds(10),
                                   from_line)
                      .ok())
          << edge.Output();
    }
  }

  std::string Address(uint32_t i) const { return absl::StrCat("127.0.0.1:", shard_ports_[i]); }
  // The first `n` shards' addresses (all count_ of them by default).
  std::string ShardList(uint32_t n = 0) const {
    std::vector<std::string> all;
    for (uint32_t i = 0; i < (n == 0 ? count_ : n); ++i) all.push_back(Address(i));
    return absl::StrJoin(all, ",");
  }

  std::unique_ptr<ChildProcess> StartShard(uint32_t i, uint32_t bridge = 0) {
    auto p = ChildProcess::Start(
        {GROUPSVC_BIN, absl::StrCat("--listen=", Address(i)), "--metrics_listen=", "--warmup=0s",
         absl::StrCat("--shards=", ShardList()), absl::StrCat("--shard_index=", i),
         absl::StrCat("--bridge_shards=", bridge)});
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    EXPECT_TRUE((*p)->WaitForLine(" listening ", absl::Seconds(20)).ok()) << (*p)->Output();
    return *std::move(p);
  }

  std::unique_ptr<ChildProcess> StartEdge(const std::string& id, int* port, int threads,
                                          uint32_t shards = 0) {
    auto p =
        ChildProcess::Start({EDGE_BIN, "--listen=127.0.0.1:0",
                             "--metrics_listen=", absl::StrCat("--groupsvc=", ShardList(shards)),
                             absl::StrCat("--edge_id=", id), absl::StrCat("--threads=", threads)});
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    absl::StatusOr<int> got = (*p)->WaitForField(" listening ", "port", absl::Seconds(20));
    EXPECT_TRUE(got.ok()) << got.status();
    *port = got.value_or(0);
    return *std::move(p);
  }

  std::unique_ptr<v1::ChannelLayer::Stub> Stub(uint32_t shard) const {
    return v1::ChannelLayer::NewStub(
        grpc::CreateChannel(Address(shard), grpc::InsecureChannelCredentials()));
  }

  // GetGroup through `shard`; `forwarded` asks that shard alone (as another
  // shard's forwarded call does), which only the owner can answer.
  grpc::Status GetGroup(uint32_t shard, const std::string& name, v1::Group* group,
                        bool forwarded = false) const {
    grpc::ClientContext context;
    if (forwarded) context.AddMetadata("x-groupsvc-forwarded", "test");
    v1::GetGroupRequest request;
    request.set_name(name);
    return Stub(shard)->GetGroup(&context, request, group);
  }

  // This shard's own groups and memberships (a forwarded Stats: no gathering).
  std::pair<uint64_t, uint64_t> OwnCounts(uint32_t shard) const {
    grpc::ClientContext context;
    context.AddMetadata("x-groupsvc-forwarded", "test");
    v1::StatsResponse stats;
    EXPECT_TRUE(Stub(shard)->Stats(&context, v1::StatsRequest(), &stats).ok());
    return {stats.groups(), stats.memberships()};
  }

  uint32_t count_ = kShards;
  std::vector<int> shard_ports_;
  std::vector<std::unique_ptr<ChildProcess>> shards_;
  std::unique_ptr<ChildProcess> edge_a_, edge_b_;
  int port_a_ = 0, port_b_ = 0;
};

TEST_F(ShardedTest, EveryRoomChatsAcrossEdgesAndAnyShardAnswersForIt) {
  std::set<uint32_t> owners;
  for (int i = 0; i < kRooms; ++i) owners.insert(chat::GroupShard(Group(i), kShards));
  ASSERT_EQ(owners.size(), kShards) << "the 30 rooms should spread over every shard";

  std::vector<std::unique_ptr<WsClient>> alice, bob;
  for (int i = 0; i < kRooms; ++i) {
    alice.push_back(Join(port_a_, Room(i)));
    bob.push_back(Join(port_b_, Room(i)));
    ASSERT_TRUE(alice.back() && bob.back());
  }
  for (int i = 0; i < kRooms; ++i) {
    for (int m = 0; m < 3; ++m) ASSERT_TRUE(alice[i]->SendText(Chat(absl::StrCat(i, "-", m))));
  }
  for (int i = 0; i < kRooms; ++i) {
    for (int m = 0; m < 3; ++m) {
      EXPECT_EQ(bob[i]->Read().value_or("nothing"), Chat(absl::StrCat(i, "-", m))) << Room(i);
      EXPECT_EQ(alice[i]->Read().value_or("nothing"), Chat(absl::StrCat(i, "-", m))) << Room(i);
    }
    ASSERT_TRUE(bob[i]->SendText(Chat("back")));
    EXPECT_EQ(alice[i]->Read().value_or("nothing"), Chat("back")) << Room(i);
    EXPECT_EQ(bob[i]->Read().value_or("nothing"), Chat("back")) << Room(i);
  }

  for (int i = 0; i < kRooms; ++i) {
    const uint32_t owner = chat::GroupShard(Group(i), kShards);
    for (uint32_t s = 0; s < kShards; ++s) {
      v1::Group group;
      grpc::Status status = GetGroup(s, Group(i), &group);
      ASSERT_TRUE(status.ok()) << Group(i) << " via shard " << s << ": " << status.error_message();
      std::set<std::string> edges;
      for (const v1::Member& m : group.members()) edges.insert(m.edge_id());
      EXPECT_EQ(group.members_size(), 2) << Group(i) << " via shard " << s;
      EXPECT_EQ(edges, (std::set<std::string>{"edge-a", "edge-b"}));
      // The members live on the owner only.
      v1::Group alone;
      status = GetGroup(s, Group(i), &alone, /*forwarded=*/true);
      if (s == owner) {
        EXPECT_TRUE(status.ok()) << status.error_message();
      } else {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << Group(i);
        EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("shard ", owner)));
      }
    }
  }

  // ListGroups through one shard pages through all 30 rooms, in order, once each.
  std::vector<std::string> listed;
  std::string token;
  do {
    grpc::ClientContext context;
    v1::ListGroupsRequest request;
    request.set_name_prefix("chat_room");
    request.set_page_size(7);
    request.set_page_token(token);
    v1::ListGroupsResponse page;
    grpc::Status status = Stub(1)->ListGroups(&context, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const auto& g : page.groups()) listed.push_back(g.name());
    token = page.next_page_token();
  } while (!token.empty());
  std::vector<std::string> expected;
  for (int i = 0; i < kRooms; ++i) expected.push_back(Group(i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listed, expected);

  grpc::ClientContext context;
  v1::StatsResponse stats;
  ASSERT_TRUE(Stub(2)->Stats(&context, v1::StatsRequest(), &stats).ok());
  EXPECT_EQ(stats.groups(), static_cast<uint64_t>(kRooms));
  EXPECT_EQ(stats.memberships(), static_cast<uint64_t>(2 * kRooms));
  // A group_send through any shard reaches the room's browsers.
  for (uint32_t s = 0; s < kShards; ++s) {
    grpc::ClientContext send_context;
    v1::GroupSendRequest request;
    request.set_group(Group(s));
    (*request.mutable_event()->mutable_fields())["type"].set_string_value("chat.message");
    (*request.mutable_event()->mutable_fields())["message"].set_string_value("from grpcurl");
    v1::GroupSendResponse response;
    grpc::Status status = Stub(s)->GroupSend(&send_context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.delivered(), 2u);
    EXPECT_EQ(alice[s]->Read().value_or("nothing"), Chat("from grpcurl"));
    EXPECT_EQ(bob[s]->Read().value_or("nothing"), Chat("from grpcurl"));
  }
}

TEST_F(ShardedTest, AListingPagesOnWhenOneShardHoldsMoreThanAPage) {
  // Eight groups, all on shard 1; listed four at a time through shard 0.
  std::vector<std::string> groups;
  for (int k = 0; groups.size() < 8; ++k) {
    const std::string name = absl::StrCat("chat_solo_", k);
    if (chat::GroupShard(name, kShards) != 1) continue;
    groups.push_back(name);
    grpc::ClientContext context;
    v1::GroupAddRequest add;
    add.set_group(name);
    add.set_channel("backend!c1");
    v1::GroupAddResponse added;
    ASSERT_TRUE(Stub(0)->GroupAdd(&context, add, &added).ok()) << name;
  }
  std::sort(groups.begin(), groups.end());
  std::vector<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext context;
    v1::ListGroupsRequest request;
    request.set_name_prefix("chat_solo_");
    request.set_page_size(4);
    request.set_page_token(token);
    v1::ListGroupsResponse page;
    ASSERT_TRUE(Stub(0)->ListGroups(&context, request, &page).ok());
    for (const auto& g : page.groups()) listed.push_back(g.name());
    token = page.next_page_token();
  } while (!token.empty() && ++pages < 10);
  EXPECT_EQ(listed, groups);
  // A queued channel (no '!') of another shard joins a group: the group's
  // copies for it wait on the group's shard, where a Receive with
  // this_shard takes them (a plain Receive goes to the channel's shard).
  const std::string jobs = "worker_jobs";
  const uint32_t group_shard = chat::GroupShard(jobs, kShards);
  std::string away;
  for (int i = 0; away.empty(); ++i) {
    if (chat::ChannelShard(absl::StrCat("worker-", i), kShards) != group_shard)
      away = absl::StrCat("worker-", i);
  }
  {
    grpc::ClientContext context;
    v1::GroupAddRequest add;
    add.set_group(jobs);
    add.set_channel(away);
    v1::GroupAddResponse added;
    ASSERT_TRUE(Stub(2)->GroupAdd(&context, add, &added).ok());
  }
  {
    grpc::ClientContext context;
    v1::GroupSendRequest send;
    send.set_group(jobs);
    (*send.mutable_event()->mutable_fields())["type"].set_string_value("worker.job");
    v1::GroupSendResponse sent;
    ASSERT_TRUE(Stub(0)->GroupSend(&context, send, &sent).ok());
    EXPECT_EQ(sent.delivered(), 1u);
  }
  for (bool this_shard : {false, true}) {
    grpc::ClientContext context;
    v1::ReceiveRequest receive;
    receive.set_channel(away);
    receive.set_this_shard(this_shard);
    v1::ReceiveResponse got;
    ASSERT_TRUE(Stub(group_shard)->Receive(&context, receive, &got).ok());
    EXPECT_EQ(got.has_event(), this_shard) << "this_shard=" << this_shard;
  }
}

TEST_F(ShardedTest, SendAndReceiveOfAQueuedChannelWorkThroughAnyShard) {
  for (int i = 0; i < 6; ++i) {
    const std::string channel = absl::StrCat("worker-", i);
    const uint32_t in = i % kShards, out = (i + 1) % kShards;
    grpc::ClientContext send_context;
    v1::SendRequest send;
    send.set_channel(channel);
    (*send.mutable_event()->mutable_fields())["type"].set_string_value("job");
    v1::SendResponse sent;
    ASSERT_TRUE(Stub(in)->Send(&send_context, send, &sent).ok()) << channel;
    grpc::ClientContext receive_context;
    v1::ReceiveRequest receive;
    receive.set_channel(channel);
    receive.mutable_timeout()->set_seconds(2);
    v1::ReceiveResponse got;
    grpc::Status status = Stub(out)->Receive(&receive_context, receive, &got);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(got.has_event()) << channel;
    EXPECT_EQ(got.event().fields().at("type").string_value(), "job") << channel;
  }
  // A waiting Receive through a non-owner, cancelled by its caller, takes no
  // event: the next Receive gets it.
  std::string channel;
  for (int i = 0; channel.empty(); ++i) {
    if (chat::GroupShard(absl::StrCat("idle-", i), kShards) != 0)
      channel = absl::StrCat("idle-", i);
  }
  {
    grpc::ClientContext waiting;
    std::thread cancel([&] {
      absl::SleepFor(absl::Milliseconds(300));
      waiting.TryCancel();
    });
    v1::ReceiveRequest receive;
    receive.set_channel(channel);
    receive.mutable_timeout()->set_seconds(30);
    v1::ReceiveResponse got;
    EXPECT_EQ(Stub(0)->Receive(&waiting, receive, &got).error_code(), grpc::StatusCode::CANCELLED);
    cancel.join();
  }
  absl::SleepFor(absl::Milliseconds(100));
  grpc::ClientContext send_context;
  v1::SendRequest send;
  send.set_channel(channel);
  (*send.mutable_event()->mutable_fields())["type"].set_string_value("late");
  v1::SendResponse sent;
  ASSERT_TRUE(Stub(0)->Send(&send_context, send, &sent).ok());
  grpc::ClientContext receive_context;
  v1::ReceiveRequest receive;
  receive.set_channel(channel);
  v1::ReceiveResponse got;
  ASSERT_TRUE(Stub(1)->Receive(&receive_context, receive, &got).ok());
  ASSERT_TRUE(got.has_event()) << "the cancelled Receive took the event";
  EXPECT_EQ(got.event().fields().at("type").string_value(), "late");
}

// Growing two shards to three: the shards are restarted with the new list
// (their state is soft) and a third starts, then the edges one at a time;
// afterwards every room works and each member is on its new owner only.
class ReshardTest : public ShardedTest {
 protected:
  void SetUp() override { StartAll(2); }
};

TEST_F(ReshardTest, GrowingTwoShardsToThreeLeavesEveryMemberOnceOnItsNewOwner) {
  auto chat_all = [&](int rooms) {
    std::vector<std::unique_ptr<WsClient>> alice, bob;
    for (int i = 0; i < rooms; ++i) {
      alice.push_back(Join(port_a_, Room(i)));
      bob.push_back(Join(port_b_, Room(i)));
    }
    for (int i = 0; i < rooms; ++i) {
      EXPECT_TRUE(alice[i]->SendText(Chat(absl::StrCat("hi ", i))));
      EXPECT_EQ(bob[i]->Read().value_or("nothing"), Chat(absl::StrCat("hi ", i))) << Room(i);
    }
    return std::make_pair(std::move(alice), std::move(bob));
  };
  auto before = chat_all(12);

  count_ = 3;
  shard_ports_.push_back(FreeLoopbackPort());
  shards_.clear();  // Every shard restarts with the new list (killed: its state is soft).
  for (uint32_t i = 0; i < 3; ++i) {
    shards_.push_back(StartShard(i));
    ASSERT_NE(shards_.back(), nullptr);
  }
  // The edges, one at a time; their browsers reconnect (as the page does).
  before.first.clear();
  edge_a_.reset();
  edge_a_ = StartEdge("edge-a", &port_a_, 1);
  ASSERT_TRUE(WaitReady(port_a_, true));
  WaitAttached(*edge_a_, 0);
  before.second.clear();
  edge_b_.reset();
  edge_b_ = StartEdge("edge-b", &port_b_, 2);
  ASSERT_TRUE(WaitReady(port_b_, true));
  WaitAttached(*edge_b_, 0);

  auto after = chat_all(12);
  uint64_t memberships = 0;
  for (uint32_t s = 0; s < 3; ++s) memberships += OwnCounts(s).second;
  EXPECT_EQ(memberships, 24u) << "each of the 24 sockets' memberships exactly once";
  for (int i = 0; i < 12; ++i) {
    v1::Group group;
    const uint32_t owner = chat::GroupShard(Group(i), 3);
    ASSERT_TRUE(GetGroup(owner, Group(i), &group, /*forwarded=*/true).ok()) << Group(i);
    EXPECT_EQ(group.members_size(), 2) << Group(i);
  }
}

// Growing two shards to three live, as docs/sharding.md does it: the
// shards restart one at a time with the new list and --bridge_shards=2 (a
// third starts), then the edges one at a time, then the shards without the
// bridge. Every room chats across the two edges at every step, the moved
// rooms included while one edge has the old list and the other the new one.
TEST_F(ReshardTest, GrowingLiveKeepsEveryRoomWholeAtEveryStep) {
  constexpr int kLiveRooms = 12;
  int moved = 0;
  for (int i = 0; i < kLiveRooms; ++i) moved += chat::GroupShard(Group(i), 3) == 2;
  ASSERT_GE(moved, 2) << "some rooms must move to the new shard";

  std::vector<std::unique_ptr<WsClient>> alice(kLiveRooms), bob(kLiveRooms);
  auto join_all = [&](std::vector<std::unique_ptr<WsClient>>& who, int port) {
    for (int i = 0; i < kLiveRooms; ++i) {
      who[i] = Join(port, Room(i));
      ASSERT_NE(who[i], nullptr);
    }
  };
  join_all(alice, port_a_);
  join_all(bob, port_b_);
  int round = 0;
  // Each room both ways; each sender also gets its own message back.
  auto chat_all = [&](const std::string& step) {
    ++round;
    for (int i = 0; i < kLiveRooms; ++i) {
      const std::string there = Chat(absl::StrCat("a", round, "-", i));
      const std::string back = Chat(absl::StrCat("b", round, "-", i));
      ASSERT_TRUE(alice[i]->SendText(there));
      EXPECT_EQ(bob[i]->Read().value_or("nothing"), there) << Room(i) << " " << step;
      EXPECT_EQ(alice[i]->Read().value_or("nothing"), there) << Room(i) << " " << step;
      ASSERT_TRUE(bob[i]->SendText(back));
      EXPECT_EQ(alice[i]->Read().value_or("nothing"), back) << Room(i) << " " << step;
      EXPECT_EQ(bob[i]->Read().value_or("nothing"), back) << Room(i) << " " << step;
    }
  };
  // Restarts shard `i` and waits until both edges are attached to it again.
  auto restart_shard = [&](uint32_t i, uint32_t bridge) {
    const size_t a = edge_a_->line_count(), b = edge_b_->line_count();
    shards_[i].reset();
    shards_[i] = StartShard(i, bridge);
    ASSERT_NE(shards_[i], nullptr);
    const std::string up = absl::StrCat("layer_up target=", Address(i));
    ASSERT_TRUE(edge_a_->WaitForLine(up, absl::Seconds(3), a).ok()) << edge_a_->Output();
    ASSERT_TRUE(edge_b_->WaitForLine(up, absl::Seconds(3), b).ok()) << edge_b_->Output();
  };
  chat_all("before");

  // 1. The shards: a third one, then the two old ones, all with the list of
  // three and the bridge to two. The edges still have the list of two.
  count_ = 3;
  shard_ports_.push_back(FreeLoopbackPort());
  shards_.push_back(StartShard(2, /*bridge=*/2));
  ASSERT_NE(shards_.back(), nullptr);
  restart_shard(0, 2);
  chat_all("shard 0 bridging");
  restart_shard(1, 2);
  chat_all("shards bridging");

  // 2. The edges, one at a time; their own sockets reconnect.
  auto restart_edge = [&](std::unique_ptr<ChildProcess>& edge, const std::string& id, int* port,
                          int threads, std::vector<std::unique_ptr<WsClient>>& who) {
    for (auto& c : who) c.reset();
    edge.reset();
    edge = StartEdge(id, port, threads);
    ASSERT_NE(edge, nullptr);
    ASSERT_TRUE(WaitReady(*port, true));
    WaitAttached(*edge, 0);
    ASSERT_TRUE(edge->WaitForLine("layer_bridge from_shards=0 to_shards=2", absl::Seconds(5)).ok())
        << edge->Output();
    join_all(who, *port);
  };
  restart_edge(edge_a_, "edge-a", &port_a_, 1, alice);
  chat_all("edge-a on three shards, edge-b on two");
  restart_edge(edge_b_, "edge-b", &port_b_, 2, bob);
  chat_all("both edges on three shards");

  // 3. The shards again, without the bridge: the sends move to the new
  // placement, where every member already is.
  for (uint32_t i = 0; i < 3; ++i) {
    restart_shard(i, 0);
    chat_all(absl::StrCat("shard ", i, " without the bridge"));
    if (i != 0) continue;
    // A room joined now, whose old owner (shard 0) no longer bridges while
    // the others still do: the join must not be refused.
    int late = kLiveRooms;  // A room of its own.
    while (!(chat::GroupShard(Group(late), 2) == 0 && chat::GroupShard(Group(late), 3) == 2))
      ++late;
    auto carol = Join(port_a_, Room(late));
    auto dave = Join(port_b_, Room(late));
    ASSERT_TRUE(carol && dave);
    ASSERT_TRUE(carol->SendText(Chat("late join")));
    EXPECT_EQ(dave->Read().value_or("nothing"), Chat("late join")) << Room(late);
    EXPECT_FALSE(carol->close_code().has_value());
  }
  ASSERT_TRUE(
      edge_a_->WaitForLine("layer_bridge from_shards=2 to_shards=0", absl::Seconds(5)).ok());
  ASSERT_TRUE(
      edge_b_->WaitForLine("layer_bridge from_shards=2 to_shards=0", absl::Seconds(5)).ok());
  chat_all("after");
  uint64_t memberships = 0;
  for (uint32_t s = 0; s < 3; ++s) memberships += OwnCounts(s).second;
  EXPECT_EQ(memberships, 2u * kLiveRooms) << "each socket's membership exactly once";
  for (int i = 0; i < kLiveRooms; ++i) {
    v1::Group group;
    ASSERT_TRUE(GetGroup(chat::GroupShard(Group(i), 3), Group(i), &group, true).ok()) << Group(i);
    EXPECT_EQ(group.members_size(), 2) << Group(i);
  }
}

TEST_F(ShardedTest, AShardDownTakesDownOnlyItsRoomsAndTheyComeBackWithoutReconnecting) {
  int down_room = -1, up_room = -1;
  for (int i = 0; i < kRooms && (down_room < 0 || up_room < 0); ++i) {
    if (chat::GroupShard(Group(i), kShards) == 1) {
      if (down_room < 0) down_room = i;
    } else if (up_room < 0) {
      up_room = i;
    }
  }
  auto alice = Join(port_a_, Room(down_room));
  auto bob = Join(port_b_, Room(down_room));
  auto carol = Join(port_a_, Room(up_room));
  auto dave = Join(port_b_, Room(up_room));
  ASSERT_TRUE(alice && bob && carol && dave);
  ASSERT_TRUE(alice->SendText(Chat("before")));
  ASSERT_EQ(bob->Read().value_or(""), Chat("before"));
  ASSERT_EQ(alice->Read().value_or(""), Chat("before"));

  shards_[1]->Signal(SIGKILL);
  ASSERT_TRUE(shards_[1]->WaitExit(absl::Seconds(5)).has_value());
  ASSERT_TRUE(edge_a_->WaitForLine("layer_down", absl::Seconds(5)).ok());
  // The down shard's room: its sender is told; the other room loses nothing;
  // both edges stay ready (two shards of three are attached).
  ASSERT_TRUE(alice->SendText(Chat("while down")));
  absl::StatusOr<std::string> error = alice->Read();
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_THAT(*error, HasSubstr(R"("error":"not_delivered")"));
  for (int m = 0; m < 20; ++m) ASSERT_TRUE(carol->SendText(Chat(absl::StrCat("up-", m))));
  for (int m = 0; m < 20; ++m) {
    EXPECT_EQ(dave->Read().value_or("nothing"), Chat(absl::StrCat("up-", m)));
    EXPECT_EQ(carol->Read().value_or("nothing"), Chat(absl::StrCat("up-", m)));
  }
  EXPECT_EQ(HttpGet("127.0.0.1", port_a_, "/readyz")->status, 200);
  EXPECT_EQ(HttpGet("127.0.0.1", port_b_, "/readyz")->status, 200);

  const size_t lines_a = edge_a_->line_count(), lines_b = edge_b_->line_count();
  const absl::Time restarted = absl::Now();
  shards_[1] = StartShard(1);
  ASSERT_NE(shards_[1], nullptr);
  // Both edges re-attach and replay their members of its rooms (layer_up
  // comes with the replay applied) within 2 s, with no browser reconnecting.
  const std::string up = absl::StrCat("layer_up target=", Address(1));
  ASSERT_TRUE(edge_a_->WaitForLine(up, absl::Seconds(2), lines_a).ok());
  ASSERT_TRUE(edge_b_->WaitForLine(up, absl::Seconds(2), lines_b).ok());
  EXPECT_LE(absl::Now() - restarted, absl::Seconds(2) + absl::Milliseconds(500));
  ASSERT_TRUE(alice->SendText(Chat("after")));
  EXPECT_EQ(alice->Read().value_or("nothing"), Chat("after"));
  EXPECT_EQ(bob->Read().value_or("nothing"), Chat("after"));
  EXPECT_FALSE(alice->close_code().has_value());
  EXPECT_FALSE(bob->close_code().has_value());
}

TEST_F(ShardedTest, AnEdgeWithAnotherShardListIsToldAndItsCommandsRefused) {
  // Two shards listed where there are three: shard 0 and 1 say they are 0/3 and 1/3.
  int port = 0;
  auto wrong = ChildProcess::Start({EDGE_BIN, "--listen=127.0.0.1:0", "--metrics_listen=",
                                    absl::StrCat("--groupsvc=", Address(0), ",", Address(1)),
                                    "--edge_id=edge-wrong"});
  ASSERT_TRUE(wrong.ok());
  ASSERT_TRUE((*wrong)->WaitForField(" listening ", "port", absl::Seconds(20)).ok());
  EXPECT_TRUE((*wrong)->WaitForLine("layer_shard_mismatch", absl::Seconds(10)).ok());
  port = (*wrong)->WaitForField(" listening ", "port", absl::Seconds(1)).value_or(0);
  // Never ready: no link agrees, so nothing it would send can go astray.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(HttpGet("127.0.0.1", port, "/readyz")->status, 503);
}

}  // namespace
}  // namespace chat::testing
