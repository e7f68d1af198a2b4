#include "groupsvc/registry/group_registry.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "groupsvc/rpc/commands.h"
#include "gtest/gtest.h"

namespace groupsvc {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// An edge's stream as the registry sees it: records deliveries, or refuses them.
class FakeEdge : public EdgeSink {
 public:
  struct Got {
    std::string type;
    std::vector<std::string> channels;
    std::string group;
  };
  bool Deliver(const EventPtr& event, std::vector<std::string> channels, absl::string_view group,
               uint64_t offset, absl::string_view epoch) override {
    if (full) return false;
    std::sort(channels.begin(), channels.end());
    got.push_back(Got{event->type, std::move(channels), std::string(group)});
    return true;
  }
  void Replaced() override { replaced = true; }

  std::vector<Got> got;
  bool full = false;
  bool replaced = false;
};

class FakeReceiver : public Receiver {
 public:
  void OnEvent(EventPtr e) override { events.push_back(std::move(e)); }
  std::vector<EventPtr> events;
};

EventPtr Ev(std::string type = "chat.message", std::string body = "hi") {
  return MakeEvent(type, R"({"type":")" + type + R"(","message":")" + body + R"("})");
}

// Options with no warm-up, so that group_sends are settled from the start.
RegistryOptions Settled() {
  RegistryOptions options;
  options.warmup = absl::ZeroDuration();
  return options;
}

// An edge process's incarnation: 16 bytes or more.
std::string Incarnation(const std::string& id) { return "incarnation-of-" + id; }

AttachRequest Hello(const std::string& id, const std::string& prefix,
                    const std::string& incarnation, const std::string& peer = "") {
  return AttachRequest{id, prefix, incarnation, peer};
}

class GroupRegistryTest : public ::testing::Test {
 protected:
  explicit GroupRegistryTest(RegistryOptions options = Settled())
      : registry_(std::make_unique<GroupRegistry>(options, &clock_)) {}
  void Reset(RegistryOptions options) {
    registry_ = std::make_unique<GroupRegistry>(options, &clock_);
  }
  std::shared_ptr<FakeEdge> Attach(const std::string& id, const std::string& prefix,
                                   const std::string& incarnation = "") {
    auto edge = std::make_shared<FakeEdge>();
    absl::StatusOr<Attachment> a = registry_->AttachEdge(
        Hello(id, prefix, incarnation.empty() ? Incarnation(id) : incarnation), edge);
    EXPECT_TRUE(a.ok()) << a.status();
    generations_[id] = a.ok() ? a->generation : 0;
    return edge;
  }
  bool Unsettled(const std::string& group) {
    absl::StatusOr<SendReport> r = registry_->GroupSend(group, Ev());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->unsettled;
  }
  std::vector<std::string> Members(const std::string& group) {
    std::vector<std::string> out;
    absl::StatusOr<GroupInfo> info = registry_->GetGroup(group);
    if (info.ok()) {
      for (const auto& m : info->members) out.push_back(m.channel);
    }
    return out;
  }

  chat::FakeClock clock_;
  std::unique_ptr<GroupRegistry> registry_;
  std::map<std::string, uint64_t> generations_;
};

TEST_F(GroupRegistryTest, InvalidNamesAreInvalidArgument) {
  EXPECT_EQ(registry_->GroupAdd("bad group", "c").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->GroupAdd("g", "a!b!c").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->Send("", Ev()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->GroupSend(std::string(100, 'g'), Ev()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->GroupDiscard("g", "!x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->Receive("a b").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GroupRegistryTest, EventWithoutTypeIsInvalidArgument) {
  absl::Status s = registry_->Send("c", MakeEvent("", "{}"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("type"), absl::string_view::npos);
}

TEST_F(GroupRegistryTest, OversizedEventIsRefusedWithItsSize) {
  RegistryOptions options;
  options.max_event_bytes = 64;
  Reset(options);
  absl::Status s = registry_->Send("c", Ev("chat.message", std::string(100, 'x')));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("exceeds the limit of 64 bytes"), absl::string_view::npos) << s;
  EXPECT_TRUE(registry_->Send("c", Ev("t", "small")).ok());
}

TEST_F(GroupRegistryTest, SendThenReceiveInOrder) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(registry_->Send("c", Ev("t", std::to_string(i))).ok());
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<EventPtr> e = registry_->Receive("c");
    ASSERT_TRUE(e.ok() && *e != nullptr);
    EXPECT_NE((*e)->json.find("\"" + std::to_string(i) + "\""), std::string::npos);
  }
  EXPECT_EQ(*registry_->Receive("c"), nullptr);
}

TEST_F(GroupRegistryTest, IdenticalEventsAreNotDeduplicated) {
  EventPtr e = Ev();
  ASSERT_TRUE(registry_->Send("c", e).ok());
  ASSERT_TRUE(registry_->Send("c", e).ok());
  EXPECT_NE(*registry_->Receive("c"), nullptr);
  EXPECT_NE(*registry_->Receive("c"), nullptr);
}

TEST_F(GroupRegistryTest, FullChannelIsResourceExhausted) {
  RegistryOptions options;
  options.capacity = 3;
  Reset(options);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry_->Send("c", Ev()).ok());
  absl::Status s = registry_->Send("c", Ev());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("channel full"), absl::string_view::npos);
  // Capacity is per channel: a neighbour is unaffected.
  EXPECT_TRUE(registry_->Send("d", Ev()).ok());
  EXPECT_EQ(registry_->Stats().drops[static_cast<int>(DropReason::kChannelFull)], 1u);
}

TEST_F(GroupRegistryTest, CapacityOverridesFirstMatchWins) {
  RegistryOptions options;
  options.capacity = 1;
  options.capacity_overrides = {{"big.*", 3}, {"big.x", 2}};
  Reset(options);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(registry_->Send("big.x", Ev()).ok());
  EXPECT_FALSE(registry_->Send("big.x", Ev()).ok());
  EXPECT_TRUE(registry_->Send("small", Ev()).ok());
  EXPECT_FALSE(registry_->Send("small", Ev()).ok());
}

TEST_F(GroupRegistryTest, QueuedEventsExpire) {
  ASSERT_TRUE(registry_->Send("c", Ev()).ok());
  clock_.Advance(absl::Seconds(59));
  ASSERT_TRUE(registry_->Send("c", Ev()).ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_NE(*registry_->Receive("c"), nullptr);  // The second one, 2 s old.
  EXPECT_EQ(*registry_->Receive("c"), nullptr);
  EXPECT_EQ(registry_->Stats().drops[static_cast<int>(DropReason::kExpired)], 1u);
}

TEST_F(GroupRegistryTest, ExpiredEventsFreeCapacity) {
  RegistryOptions options;
  options.capacity = 1;
  Reset(options);
  ASSERT_TRUE(registry_->Send("c", Ev()).ok());
  EXPECT_FALSE(registry_->Send("c", Ev()).ok());
  clock_.Advance(absl::Seconds(61));
  EXPECT_TRUE(registry_->Send("c", Ev()).ok());
}

TEST_F(GroupRegistryTest, GroupAddAndDiscardAreIdempotent) {
  EXPECT_TRUE(registry_->GroupAdd("g", "a").ok());
  EXPECT_TRUE(registry_->GroupAdd("g", "a").ok());
  EXPECT_THAT(Members("g"), ElementsAre("a"));
  EXPECT_TRUE(registry_->GroupDiscard("g", "a").ok());
  EXPECT_TRUE(registry_->GroupDiscard("g", "a").ok());
  EXPECT_TRUE(registry_->GroupDiscard("nosuchgroup", "a").ok());
  EXPECT_EQ(registry_->GetGroup("g").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Stats().groups, 0u);
}

TEST_F(GroupRegistryTest, MembershipLapsesUnlessRenewed) {
  ASSERT_TRUE(registry_->GroupAdd("g", "a").ok());
  ASSERT_TRUE(registry_->GroupAdd("g", "b").ok());
  clock_.Advance(absl::Seconds(86000));
  ASSERT_TRUE(registry_->GroupAdd("g", "a").ok());  // Renewed.
  clock_.Advance(absl::Seconds(401));
  EXPECT_THAT(Members("g"), ElementsAre("a"));
  absl::StatusOr<SendReport> r = registry_->GroupSend("g", Ev());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->delivered, 1u);
  EXPECT_EQ(*registry_->Receive("b"), nullptr);
  registry_->Sweep();
  EXPECT_EQ(registry_->Stats().memberships, 1u);
}

TEST_F(GroupRegistryTest, GroupSendMakesOneDeliveryPerEdge) {
  auto e1 = Attach("edge-1", "e1!");
  auto e2 = Attach("edge-2", "e2!");
  for (const char* c : {"e1!a", "e1!b", "e1!c", "e2!x", "e2!y"}) {
    ASSERT_TRUE(registry_->GroupAdd("room", c).ok());
  }
  absl::StatusOr<SendReport> r = registry_->GroupSend("room", Ev());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->delivered, 5u);
  ASSERT_EQ(e1->got.size(), 1u);
  ASSERT_EQ(e2->got.size(), 1u);
  EXPECT_THAT(e1->got[0].channels, ElementsAre("e1!a", "e1!b", "e1!c"));
  EXPECT_THAT(e2->got[0].channels, ElementsAre("e2!x", "e2!y"));
  EXPECT_EQ(e1->got[0].group, "room");
  EXPECT_EQ(registry_->Stats().stream_deliveries, 2u);
}

TEST_F(GroupRegistryTest, GroupSendReachesQueuedChannelsToo) {
  auto e1 = Attach("edge-1", "e1!");
  ASSERT_TRUE(registry_->GroupAdd("room", "e1!a").ok());
  ASSERT_TRUE(registry_->GroupAdd("room", "backend").ok());
  ASSERT_TRUE(registry_->GroupSend("room", Ev()).ok());
  EXPECT_EQ(e1->got.size(), 1u);
  EXPECT_NE(*registry_->Receive("backend"), nullptr);
}

TEST_F(GroupRegistryTest, FullMemberLosesOnlyItsCopy) {
  RegistryOptions options;
  options.capacity = 1;
  Reset(options);
  auto e1 = Attach("edge-1", "e1!");
  auto e2 = Attach("edge-2", "e2!");
  e2->full = true;
  for (const char* c : {"e1!a", "e2!b", "q1", "q2"}) ASSERT_TRUE(registry_->GroupAdd("g", c).ok());
  ASSERT_TRUE(registry_->Send("q2", Ev()).ok());  // q2 is now full.
  absl::StatusOr<SendReport> r = registry_->GroupSend("g", Ev());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->delivered, 2u);  // e1!a and q1.
  EXPECT_EQ(r->dropped, 2u);    // e2!b (stream full) and q2 (channel full).
  EXPECT_EQ(e1->got.size(), 1u);
  StatsSnapshot s = registry_->Stats();
  EXPECT_EQ(s.drops[static_cast<int>(DropReason::kEdgeQueueFull)], 1u);
  EXPECT_EQ(s.drops[static_cast<int>(DropReason::kChannelFull)], 1u);
}

TEST_F(GroupRegistryTest, SendToEdgeChannelGoesToItsStream) {
  auto e1 = Attach("edge-1", "e1!");
  ASSERT_TRUE(registry_->Send("e1!a", Ev("x.y")).ok());
  ASSERT_EQ(e1->got.size(), 1u);
  EXPECT_EQ(e1->got[0].type, "x.y");
  EXPECT_THAT(e1->got[0].channels, ElementsAre("e1!a"));
  EXPECT_EQ(registry_->Receive("e1!a").status().code(), absl::StatusCode::kFailedPrecondition);
  e1->full = true;
  EXPECT_EQ(registry_->Send("e1!a", Ev()).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(GroupRegistryTest, DetachRemovesEveryMembershipOfTheEdge) {
  Attach("edge-1", "e1!");
  Attach("edge-2", "e2!");
  ASSERT_TRUE(registry_->GroupAdd("g1", "e1!a").ok());
  ASSERT_TRUE(registry_->GroupAdd("g1", "e2!b").ok());
  ASSERT_TRUE(registry_->GroupAdd("g2", "e1!c").ok());
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kClosed);
  EXPECT_THAT(Members("g1"), ElementsAre("e2!b"));
  EXPECT_EQ(registry_->GetGroup("g2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Stats().attached_edges, 1u);
}

TEST_F(GroupRegistryTest, SameIncarnationReplacesTheOlderStream) {
  auto old_stream = Attach("edge-1", "e1!");
  uint64_t old_generation = generations_["edge-1"];
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  auto new_stream = std::make_shared<FakeEdge>();
  absl::StatusOr<Attachment> a =
      registry_->AttachEdge(Hello("edge-1", "e1!", Incarnation("edge-1")), new_stream);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->replaced_previous);
  EXPECT_TRUE(old_stream->replaced);
  // The new stream re-registers; the old one's late detach must not undo that.
  EXPECT_TRUE(Members("g").empty());
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  registry_->DetachEdge("edge-1", old_generation, DetachReason::kLost);
  EXPECT_THAT(Members("g"), ElementsAre("e1!a"));
  ASSERT_TRUE(registry_->GroupSend("g", Ev()).ok());
  EXPECT_EQ(new_stream->got.size(), 1u);
  EXPECT_TRUE(old_stream->got.empty());
}

TEST_F(GroupRegistryTest, OtherIncarnationIsRefusedAndTheAttachedEdgeKeepsItsMembers) {
  const std::string first_secret = "first-process-0123456789";
  const std::string second_secret = "second-process-0123456789";
  absl::StatusOr<Attachment> first = registry_->AttachEdge(
      Hello("edge-1", "e1!", first_secret, "ipv4:10.0.0.1:4000"), std::make_shared<FakeEdge>());
  ASSERT_TRUE(first.ok());
  auto attached = std::make_shared<FakeEdge>();
  ASSERT_TRUE(
      registry_->AttachEdge(Hello("edge-1", "e1!", first_secret, "ipv4:10.0.0.1:4001"), attached)
          .ok());
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  // Another process with the same edge id, with or without the same prefix.
  for (const char* prefix : {"e1!", "e1b!"}) {
    auto intruder = std::make_shared<FakeEdge>();
    absl::StatusOr<Attachment> a = registry_->AttachEdge(
        Hello("edge-1", prefix, second_secret, "ipv4:10.0.0.2:5000"), intruder);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kAlreadyExists) << prefix;
    EXPECT_EQ(a.status().message(),
              "edge id \"edge-1\" is attached by another process (from ipv4:10.0.0.1:4001); "
              "give each edge process its own --edge_id");
    EXPECT_FALSE(intruder->replaced);
  }
  EXPECT_FALSE(attached->replaced);
  EXPECT_THAT(Members("g"), ElementsAre("e1!a"));
  ASSERT_TRUE(registry_->GroupSend("g", Ev()).ok());
  EXPECT_EQ(attached->got.size(), 1u);
  // Without a known peer, the message says no "from".
  Attach("edge-2", "e2!");
  absl::StatusOr<Attachment> a =
      registry_->AttachEdge(Hello("edge-2", "e2!", second_secret), std::make_shared<FakeEdge>());
  EXPECT_EQ(a.status().message(),
            "edge id \"edge-2\" is attached by another process; give each edge process its own "
            "--edge_id");
}

TEST_F(GroupRegistryTest, AnEdgeIdIsFreeAgainOnceDetached) {
  Attach("edge-1", "e1!", "first-process-0123456789");
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kLost);
  Attach("edge-1", "e1!", "second-process-0123456789");  // The restarted process.
  EXPECT_EQ(registry_->Stats().attached_edges, 1u);
}

TEST_F(GroupRegistryTest, IncarnationOfFewerThan16BytesIsInvalidArgument) {
  for (const std::string& incarnation :
       {std::string(), std::string(15, 'x'), std::string(kMaxIncarnationBytes + 1, 'x')}) {
    absl::StatusOr<Attachment> a =
        registry_->AttachEdge(Hello("edge-1", "e1!", incarnation), std::make_shared<FakeEdge>());
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << incarnation.size();
    EXPECT_NE(a.status().message().find("incarnation"), absl::string_view::npos);
  }
  EXPECT_EQ(registry_->Stats().attached_edges, 0u);
  EXPECT_TRUE(
      registry_
          ->AttachEdge(Hello("edge-1", "e1!", std::string(16, '\0')), std::make_shared<FakeEdge>())
          .ok());
}

TEST_F(GroupRegistryTest, PrefixHeldByAnotherEdgeIsAlreadyExists) {
  Attach("edge-1", "e1!");
  absl::StatusOr<Attachment> a = registry_->AttachEdge(
      Hello("edge-2", "e1!", Incarnation("edge-1")), std::make_shared<FakeEdge>());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(a.status().message().find("edge-1"), absl::string_view::npos);
}

TEST_F(GroupRegistryTest, BadHelloIsInvalidArgument) {
  auto sink = std::make_shared<FakeEdge>();
  const std::string secret = Incarnation("edge-1");
  EXPECT_EQ(registry_->AttachEdge(Hello("edge 1", "e1!", secret), sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->AttachEdge(Hello("edge-1", "e1", secret), sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->AttachEdge(Hello("edge-1", "e1!x", secret), sink).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------- Unsettled group_sends

TEST_F(GroupRegistryTest, WarmupLeavesGroupSendsUnsettledUntilItPasses) {
  RegistryOptions options;
  options.warmup = absl::Seconds(3);
  Reset(options);
  auto e1 = Attach("edge-1", "e1!");
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  absl::StatusOr<SendReport> r = registry_->GroupSend("g", Ev());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->unsettled);
  EXPECT_EQ(r->delivered, 1u);  // Delivered to whom it can see, all the same.
  EXPECT_TRUE(Unsettled("empty_group"));
  clock_.Advance(absl::Milliseconds(2999));
  EXPECT_TRUE(Unsettled("g"));
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(Unsettled("g"));
  EXPECT_FALSE(Unsettled("empty_group"));
  EXPECT_EQ(registry_->Stats().unsettled_group_sends, 3u);
}

TEST_F(GroupRegistryTest, NoWarmupIsSettledAtOnce) {
  RegistryOptions options;
  options.warmup = absl::ZeroDuration();
  Reset(options);
  EXPECT_FALSE(Unsettled("g"));
  EXPECT_EQ(registry_->Stats().unsettled_group_sends, 0u);
}

TEST_F(GroupRegistryTest, LostEdgeUnsettlesOnlyTheGroupsItHadMembersIn) {
  Attach("edge-1", "e1!");
  Attach("edge-2", "e2!");
  ASSERT_TRUE(registry_->GroupAdd("g1", "e1!a").ok());
  ASSERT_TRUE(registry_->GroupAdd("g2", "e1!b").ok());
  ASSERT_TRUE(registry_->GroupAdd("g2", "e2!c").ok());
  ASSERT_TRUE(registry_->GroupAdd("g3", "e2!d").ok());
  EXPECT_FALSE(Unsettled("g1"));
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kLost);
  EXPECT_TRUE(Unsettled("g1"));  // No member left that groupsvc can see.
  EXPECT_TRUE(Unsettled("g2"));
  EXPECT_FALSE(Unsettled("g3"));
  EXPECT_FALSE(Unsettled("other"));
  StatsSnapshot s = registry_->Stats();
  EXPECT_EQ(s.unsettled_group_sends, 2u);
  EXPECT_EQ(s.lost_edges, 1u);
}

TEST_F(GroupRegistryTest, ReattachAndReplaySettlesTheLostEdgesGroups) {
  Attach("edge-1", "e1!", "first-process-0123456789");
  Attach("edge-2", "e2!");
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kLost);
  // Another edge's replay settles nothing of edge-1's.
  registry_->ReplayApplied("edge-2", generations_["edge-2"]);
  EXPECT_TRUE(Unsettled("g"));
  // edge-1 again (restarted: another incarnation), before and after its replay.
  Attach("edge-1", "e1!", "second-process-0123456789");
  EXPECT_TRUE(Unsettled("g"));
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  registry_->ReplayApplied("edge-1", generations_["edge-1"]);
  EXPECT_FALSE(Unsettled("g"));
  EXPECT_EQ(registry_->Stats().lost_edges, 0u);
}

TEST_F(GroupRegistryTest, TheLostWindowPassesWithoutAReplay) {
  Attach("edge-1", "e1!");
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kLost);
  clock_.Advance(absl::Milliseconds(4999));
  EXPECT_TRUE(Unsettled("g"));
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(Unsettled("g"));
  EXPECT_EQ(registry_->Stats().lost_edges, 1u);  // Until the sweep.
  registry_->Sweep();
  EXPECT_EQ(registry_->Stats().lost_edges, 0u);
  EXPECT_FALSE(Unsettled("g"));
}

TEST_F(GroupRegistryTest, CleanDetachUnsettlesNothing) {
  Attach("edge-1", "e1!");
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kClosed);
  EXPECT_FALSE(Unsettled("g"));
  EXPECT_EQ(registry_->Stats().lost_edges, 0u);
}

TEST_F(GroupRegistryTest, LostEdgeWithoutMembersUnsettlesNothing) {
  Attach("edge-1", "e1!");
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kLost);
  EXPECT_FALSE(Unsettled("g"));
  EXPECT_EQ(registry_->Stats().lost_edges, 0u);
}

TEST_F(GroupRegistryTest, ReplacedStreamUnsettlesUntilTheNewOneReplays) {
  Attach("edge-1", "e1!");
  const uint64_t old_generation = generations_["edge-1"];
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  Attach("edge-1", "e1!");  // Same process, new stream: the old one's members are gone.
  EXPECT_TRUE(Unsettled("g"));
  registry_->ReplayApplied("edge-1", old_generation);  // Late, from the old stream.
  EXPECT_TRUE(Unsettled("g"));
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  registry_->ReplayApplied("edge-1", generations_["edge-1"]);
  EXPECT_FALSE(Unsettled("g"));
}

TEST_F(GroupRegistryTest, TooManyLostEdgesUnsettleEveryGroup) {
  RegistryOptions options = Settled();
  options.max_lost_edges = 2;
  Reset(options);
  for (const char* id : {"edge-1", "edge-2", "edge-3"}) {
    Attach(id, std::string(id) + "!");
    ASSERT_TRUE(registry_->GroupAdd(std::string("g-") + id, std::string(id) + "!a").ok());
    registry_->DetachEdge(id, generations_[id], DetachReason::kLost);
  }
  EXPECT_TRUE(Unsettled("unrelated"));
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(Unsettled("unrelated"));
  EXPECT_FALSE(Unsettled("g-edge-1"));
  registry_->Sweep();
  EXPECT_EQ(registry_->Stats().lost_edges, 0u);
}

TEST_F(GroupRegistryTest, ApplyCommandAcksUnsettledGroupSends) {
  Attach("edge-1", "e1!");
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  v1::Command command;
  command.set_request_id(7);
  command.mutable_group_send()->set_group("g");
  command.mutable_group_send()->mutable_event()->set_type("chat.message");
  command.mutable_group_send()->mutable_event()->set_json(R"({"type":"chat.message"})");
  v1::Ack ack = ApplyCommand(*registry_, command);
  EXPECT_EQ(ack.request_id(), 7u);
  EXPECT_EQ(ack.code(), 0);
  EXPECT_EQ(ack.delivered(), 1u);
  EXPECT_FALSE(ack.unsettled());
  registry_->DetachEdge("edge-1", generations_["edge-1"], DetachReason::kLost);
  ack = ApplyCommand(*registry_, command);
  EXPECT_EQ(ack.delivered(), 0u);
  EXPECT_TRUE(ack.unsettled());
}

TEST_F(GroupRegistryTest, WaitingReceiverGetsTheNextEvent) {
  auto receiver = std::make_shared<FakeReceiver>();
  absl::StatusOr<EventPtr> e = registry_->Receive("c", receiver);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, nullptr);
  ASSERT_TRUE(registry_->Send("c", Ev("first")).ok());
  ASSERT_TRUE(registry_->Send("c", Ev("second")).ok());
  ASSERT_EQ(receiver->events.size(), 1u);
  EXPECT_EQ(receiver->events[0]->type, "first");
  EXPECT_FALSE(registry_->CancelReceive("c", receiver.get()));
  EXPECT_EQ((*registry_->Receive("c"))->type, "second");
}

TEST_F(GroupRegistryTest, CancelledReceiverGetsNothing) {
  auto receiver = std::make_shared<FakeReceiver>();
  ASSERT_TRUE(registry_->Receive("c", receiver).ok());
  EXPECT_TRUE(registry_->CancelReceive("c", receiver.get()));
  ASSERT_TRUE(registry_->Send("c", Ev()).ok());
  EXPECT_TRUE(receiver->events.empty());
  EXPECT_NE(*registry_->Receive("c"), nullptr);
}

TEST_F(GroupRegistryTest, FlushEmptiesEverything) {
  ASSERT_TRUE(registry_->GroupAdd("g", "a").ok());
  ASSERT_TRUE(registry_->Send("c", Ev()).ok());
  registry_->Flush();
  StatsSnapshot s = registry_->Stats();
  EXPECT_EQ(s.groups, 0u);
  EXPECT_EQ(s.queued_events, 0u);
  EXPECT_EQ(*registry_->Receive("c"), nullptr);
}

TEST_F(GroupRegistryTest, QueuedBytesAreBounded) {
  RegistryOptions options;
  options.max_queued_bytes = 200;
  Reset(options);
  int accepted = 0;
  absl::Status last;
  for (int i = 0; i < 10; ++i) {
    last = registry_->Send("c" + std::to_string(i), Ev());
    if (last.ok()) ++accepted;
  }
  EXPECT_LT(accepted, 10);
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(last.message().find("layer full"), absl::string_view::npos);
}

TEST_F(GroupRegistryTest, ListGroupsPagesInNameOrderWithPrefix) {
  for (const char* g : {"chat_b", "chat_a", "chat_c", "other"}) {
    ASSERT_TRUE(registry_->GroupAdd(g, "x").ok());
  }
  ASSERT_TRUE(registry_->GroupAdd("chat_a", "y").ok());
  GroupPage p1 = registry_->ListGroups("chat_", 2, "");
  ASSERT_EQ(p1.groups.size(), 2u);
  EXPECT_EQ(p1.groups[0].name, "chat_a");
  EXPECT_EQ(p1.groups[0].size, 2u);
  EXPECT_EQ(p1.groups[1].name, "chat_b");
  GroupPage p2 = registry_->ListGroups("chat_", 2, p1.next_page_token);
  ASSERT_EQ(p2.groups.size(), 1u);
  EXPECT_EQ(p2.groups[0].name, "chat_c");
  EXPECT_EQ(p2.next_page_token, "");
}

TEST_F(GroupRegistryTest, GetGroupShowsOwnerAndTimes) {
  Attach("edge-1", "e1!");
  const absl::Time t0 = clock_.Now();
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(registry_->GroupAdd("g", "e1!a").ok());
  ASSERT_TRUE(registry_->GroupAdd("g", "queued").ok());
  absl::StatusOr<GroupInfo> info = registry_->GetGroup("g");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->members.size(), 2u);
  EXPECT_EQ(info->members[0].channel, "e1!a");
  EXPECT_EQ(info->members[0].edge_id, "edge-1");
  EXPECT_EQ(info->members[0].joined, t0);
  EXPECT_EQ(info->members[0].renewed, t0 + absl::Seconds(5));
  EXPECT_EQ(info->members[1].edge_id, "");
}

TEST_F(GroupRegistryTest, NewChannelNamesAreValidAndDistinct) {
  absl::StatusOr<std::string> a = registry_->NewChannel("");
  absl::StatusOr<std::string> b = registry_->NewChannel("specific");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(absl::StartsWith(*a, "specific."));
  EXPECT_NE(a->find('!'), std::string::npos);
  EXPECT_EQ(registry_->NewChannel("bad prefix").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace groupsvc
