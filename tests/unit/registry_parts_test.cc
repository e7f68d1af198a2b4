// The GroupRegistry's parts, each on its own (groupsvc/registry/); the
// registry's behaviour as a whole is in group_registry_test.cc.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "groupsvc/registry/edge_directory.h"
#include "groupsvc/registry/group_table.h"
#include "groupsvc/registry/history.h"
#include "groupsvc/registry/mailboxes.h"
#include "groupsvc/registry/presence.h"
#include "groupsvc/registry/unsettled_groups.h"
#include "gtest/gtest.h"

namespace groupsvc {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

EventPtr Ev(const std::string& body = "hi") {
  return MakeEvent("chat.message", R"({"type":"chat.message","message":")" + body + R"("})");
}

std::vector<std::string> Owners(const std::vector<OwnerMembers>& members) {
  std::vector<std::string> owners;
  for (const auto& m : members) owners.push_back(m.owner);
  return owners;
}

// ---------------------------------------------------------------- GroupTable

TEST(GroupTableTest, MembersComeBucketedByOwnerPrefix) {
  GroupTable table(absl::Hours(1));
  table.Add("room", "edge-a!1", kStart);
  table.Add("room", "edge-a!2", kStart);
  table.Add("room", "edge-b!1", kStart);
  table.Add("room", "queued", kStart);
  std::vector<OwnerMembers> members = table.Members("room", kStart);
  EXPECT_THAT(Owners(members), UnorderedElementsAre("edge-a!", "edge-b!", ""));
  for (const auto& m : members) {
    if (m.owner == "edge-a!") {
      EXPECT_THAT(m.channels, UnorderedElementsAre("edge-a!1", "edge-a!2"));
    }
  }
  EXPECT_THAT(table.Members("other", kStart), IsEmpty());
}

TEST(GroupTableTest, AMembershipLapsesUnlessRenewedAndLookupsSkipIt) {
  GroupTable table(absl::Seconds(10));
  table.Add("room", "e!old", kStart);
  table.Add("room", "e!renewed", kStart);
  table.Add("room", "e!renewed", kStart + absl::Seconds(8));
  std::vector<OwnerMembers> members = table.Members("room", kStart + absl::Seconds(12));
  ASSERT_EQ(members.size(), 1u);
  EXPECT_THAT(members[0].channels, ElementsAre("e!renewed"));
  // Removed by Sweep alone, which names it (the registry's presence follows).
  EXPECT_EQ(table.Counts(), std::make_pair(uint64_t{1}, uint64_t{2}));
  std::vector<std::pair<std::string, std::string>> lapsed;
  table.Sweep(kStart + absl::Seconds(12), &lapsed);
  EXPECT_THAT(lapsed, ElementsAre(std::make_pair(std::string("room"), std::string("e!old"))));
  EXPECT_EQ(table.Counts(), std::make_pair(uint64_t{1}, uint64_t{1}));
}

TEST(GroupTableTest, SweepIsTheWalkerThatRemovesLapsedMembersAndEmptyGroups) {
  GroupTable table(absl::Seconds(10));
  table.Add("a", "e!1", kStart);
  table.Add("b", "e!2", kStart + absl::Seconds(5));
  EXPECT_EQ(table.Counts(), std::make_pair(uint64_t{2}, uint64_t{2}));
  table.Sweep(kStart + absl::Seconds(11));
  EXPECT_EQ(table.Counts(), std::make_pair(uint64_t{1}, uint64_t{1}));
  EXPECT_EQ(table.List("", 10, "", kStart + absl::Seconds(11)).groups.size(), 1u);
}

TEST(GroupTableTest, RemoveOwnerTakesOnlyThatOwnersMembersAndNamesTheirGroups) {
  GroupTable table(absl::Hours(1));
  table.Add("a", "gone!1", kStart);
  table.Add("b", "gone!2", kStart);
  table.Add("b", "stays!1", kStart);
  EXPECT_THAT(table.OwnerGroups("gone!"), UnorderedElementsAre("a", "b"));
  absl::flat_hash_set<std::string> groups;
  table.RemoveOwner("gone!", &groups);
  EXPECT_THAT(groups, UnorderedElementsAre("a", "b"));
  EXPECT_EQ(table.Counts(), std::make_pair(uint64_t{1}, uint64_t{1}));
  EXPECT_THAT(table.Get("b", kStart), ::testing::SizeIs(1));
}

TEST(GroupTableTest, ListPagesByNameAfterTheToken) {
  GroupTable table(absl::Hours(1));
  for (const char* g : {"chat_c", "chat_a", "other", "chat_b"}) table.Add(g, "e!1", kStart);
  GroupPage first = table.List("chat_", 2, "", kStart);
  ASSERT_EQ(first.groups.size(), 2u);
  EXPECT_EQ(first.groups[0].name, "chat_a");
  EXPECT_EQ(first.next_page_token, "chat_b");
  GroupPage second = table.List("chat_", 2, first.next_page_token, kStart);
  ASSERT_EQ(second.groups.size(), 1u);
  EXPECT_EQ(second.groups[0].name, "chat_c");
  EXPECT_EQ(second.next_page_token, "");
}

// ----------------------------------------------------------------- Mailboxes

class Waiting : public Receiver {
 public:
  void OnEvent(EventPtr e) override { got.push_back(std::move(e)); }
  std::vector<EventPtr> got;
};

TEST(MailboxesTest, AChannelHoldsItsCapacityThenRefusesWithChannelFull) {
  DropCounts drops;
  Mailboxes boxes(MailboxLimits{.capacity = 2, .capacity_overrides = {{"big*", 3}}}, &drops);
  EXPECT_TRUE(boxes.Put("small", Ev(), kStart, nullptr).ok());
  EXPECT_TRUE(boxes.Put("small", Ev(), kStart, nullptr).ok());
  absl::Status full = boxes.Put("small", Ev(), kStart, nullptr);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), ::testing::HasSubstr("channel full"));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(boxes.Put("big1", Ev(), kStart, nullptr).ok());
  EXPECT_FALSE(boxes.Put("big1", Ev(), kStart, nullptr).ok());
  EXPECT_EQ(boxes.queued_events(), 5u);
}

TEST(MailboxesTest, EventsComeOutInOrderAndExpiredOnesAreDroppedAndCounted) {
  DropCounts drops;
  Mailboxes boxes(MailboxLimits{.expiry = absl::Seconds(10)}, &drops);
  ASSERT_TRUE(boxes.Put("c", Ev("old"), kStart, nullptr).ok());
  ASSERT_TRUE(boxes.Put("c", Ev("new"), kStart + absl::Seconds(5), nullptr).ok());
  absl::StatusOr<EventPtr> e = boxes.Take("c", kStart + absl::Seconds(11), nullptr);
  ASSERT_TRUE(e.ok());
  ASSERT_NE(*e, nullptr);
  EXPECT_THAT((*e)->json, ::testing::HasSubstr("new"));
  EXPECT_EQ(drops.Get(static_cast<size_t>(DropReason::kExpired)), 1u);
  EXPECT_EQ(boxes.queued_events(), 0u);
  EXPECT_EQ(boxes.channels(), 0u);
}

TEST(MailboxesTest, AWaitingReceiverGetsTheNextEventInsteadOfTheQueue) {
  DropCounts drops;
  Mailboxes boxes(MailboxLimits{}, &drops);
  auto receiver = std::make_shared<Waiting>();
  absl::StatusOr<EventPtr> none = boxes.Take("c", kStart, receiver);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
  ASSERT_TRUE(boxes.Put("c", Ev(), kStart, nullptr).ok());
  EXPECT_EQ(receiver->got.size(), 1u);
  EXPECT_EQ(boxes.queued_events(), 0u);
  EXPECT_FALSE(boxes.Cancel("c", receiver.get()));  // Already served.
}

TEST(MailboxesTest, AQuotaIsChargedPerCopyAndRefundedWhenTheCopyLeaves) {
  DropCounts drops;
  Mailboxes boxes(MailboxLimits{}, &drops);
  auto quota = std::make_shared<QueueQuota>("caller", Ev()->ByteSize());
  ASSERT_TRUE(boxes.Put("c", Ev(), kStart, quota).ok());
  EXPECT_EQ(boxes.Put("c", Ev(), kStart, quota).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(boxes.Take("c", kStart, nullptr).ok());
  EXPECT_EQ(quota->bytes(), 0u);
  EXPECT_TRUE(boxes.Put("c", Ev(), kStart, quota).ok());
}

// ------------------------------------------------------------- EdgeDirectory

class Sink : public EdgeSink {
 public:
  bool Deliver(const EventPtr&, std::vector<std::string>, absl::string_view, uint64_t,
               absl::string_view) override {
    return true;
  }
  void Replaced() override {}
};

AttachRequest Hello(const std::string& id, const std::string& incarnation) {
  return AttachRequest{id, id + "!", "incarnation-" + incarnation + "-0123456789", "peer"};
}

TEST(EdgeDirectoryTest, TheSameProcessReplacesItsStreamAndTheStepRunsOnce) {
  EdgeDirectory edges;
  auto first = std::make_shared<Sink>();
  int steps = 0;
  auto step = [&](absl::string_view old_prefix, uint64_t generation) {
    ++steps;
    EXPECT_EQ(old_prefix, "e!");
    EXPECT_EQ(generation, 2u);
  };
  absl::StatusOr<EdgeDirectory::Admitted> a = edges.Attach(Hello("e", "p1"), first, step);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->attachment.generation, 1u);
  EXPECT_EQ(a->replaced, nullptr);
  absl::StatusOr<EdgeDirectory::Admitted> b =
      edges.Attach(Hello("e", "p1"), std::make_shared<Sink>(), step);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->attachment.replaced_previous);
  EXPECT_EQ(b->replaced, first);
  EXPECT_EQ(steps, 1);
  EXPECT_EQ(edges.size(), 1u);
}

TEST(EdgeDirectoryTest, AnotherProcessWithTheSameIdOrPrefixIsRefused) {
  EdgeDirectory edges;
  auto none = [](absl::string_view, uint64_t) { FAIL() << "nothing is replaced"; };
  ASSERT_TRUE(edges.Attach(Hello("e", "p1"), std::make_shared<Sink>(), none).ok());
  EXPECT_EQ(edges.Attach(Hello("e", "p2"), std::make_shared<Sink>(), none).status().code(),
            absl::StatusCode::kAlreadyExists);
  AttachRequest thief = Hello("f", "p3");
  thief.channel_prefix = "e!";
  EXPECT_EQ(edges.Attach(thief, std::make_shared<Sink>(), none).status().code(),
            absl::StatusCode::kAlreadyExists);
  AttachRequest short_incarnation = Hello("g", "p4");
  short_incarnation.incarnation = "short";
  EXPECT_EQ(edges.Attach(short_incarnation, std::make_shared<Sink>(), none).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EdgeDirectoryTest, AProcessIsKnownByItsChannelsClientPart) {
  EdgeDirectory edges;
  auto none = [](absl::string_view, uint64_t) {};
  // "edge-1.x7k2!" owns "edge-1.x7k2!c1" and Channels' "specific.x7k2!9f" alike.
  AttachRequest dotted = Hello("edge-1", "p1");
  dotted.channel_prefix = "edge-1.x7k2!";
  ASSERT_TRUE(edges.Attach(dotted, std::make_shared<Sink>(), none).ok());
  EXPECT_NE(edges.Find("x7k2!"), nullptr);
  AttachRequest same_client = Hello("edge-2", "p2");
  same_client.channel_prefix = "other.x7k2!";
  EXPECT_EQ(edges.Attach(same_client, std::make_shared<Sink>(), none).status().code(),
            absl::StatusCode::kAlreadyExists);
  // An empty client part would own every "*.!*" channel.
  AttachRequest empty_client = Hello("edge-3", "p3");
  empty_client.channel_prefix = "edge-3.!";
  EXPECT_EQ(edges.Attach(empty_client, std::make_shared<Sink>(), none).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EdgeDirectoryTest, OnlyTheCurrentGenerationIsRemovedAndOwnersAreNamed) {
  EdgeDirectory edges;
  auto step = [](absl::string_view, uint64_t) {};
  ASSERT_TRUE(edges.Attach(Hello("e", "p1"), std::make_shared<Sink>(), step).ok());
  ASSERT_TRUE(edges.Attach(Hello("e", "p1"), std::make_shared<Sink>(), step).ok());
  EXPECT_FALSE(edges.CurrentPrefix("e", 1).has_value());
  EXPECT_FALSE(edges.Remove("e", 1));
  EXPECT_EQ(edges.CurrentPrefix("e", 2), "e!");
  std::vector<MemberInfo> members{{"e!1", "e!", kStart, kStart}, {"q", "", kStart, kStart}};
  edges.NameOwners(members);
  EXPECT_EQ(members[0].edge_id, "e");
  EXPECT_EQ(members[1].edge_id, "");
  EXPECT_TRUE(edges.Remove("e", 2));
  EXPECT_EQ(edges.Find("e!"), nullptr);
}

// ----------------------------------------------------------- UnsettledGroups

TEST(UnsettledGroupsTest, EveryGroupIsUnsettledDuringTheWarmUpOnly) {
  UnsettledGroups unsettled(UnsettledOptions{.warmup = absl::Seconds(3)}, kStart);
  EXPECT_TRUE(unsettled.Unsettled("any", kStart + absl::Seconds(2)));
  EXPECT_FALSE(unsettled.Unsettled("any", kStart + absl::Seconds(3)));
}

TEST(UnsettledGroupsTest, ALostEdgesGroupsStayUnsettledUntilItsReplayOrTheWindowEnds) {
  UnsettledGroups unsettled(
      UnsettledOptions{.warmup = absl::ZeroDuration(), .window = absl::Seconds(5)}, kStart);
  unsettled.MarkLost("e", {"a"}, /*settled_by=*/2, kStart);
  unsettled.AddLostGroups("e", {"b"});
  EXPECT_TRUE(unsettled.Unsettled("a", kStart));
  EXPECT_TRUE(unsettled.Unsettled("b", kStart));
  EXPECT_FALSE(unsettled.Unsettled("c", kStart));
  unsettled.ReplayApplied("e", 1);  // An older stream's replay settles nothing.
  EXPECT_TRUE(unsettled.Unsettled("a", kStart));
  unsettled.ReplayApplied("e", 2);
  EXPECT_FALSE(unsettled.Unsettled("a", kStart));
  unsettled.MarkLost("f", {"a"}, 1, kStart);
  EXPECT_FALSE(unsettled.Unsettled("a", kStart + absl::Seconds(5)));
  unsettled.Sweep(kStart + absl::Seconds(5));
  EXPECT_EQ(unsettled.lost_edges(), 0u);
}

TEST(UnsettledGroupsTest, PastTheTrackingBoundEveryGroupIsUnsettledForTheWindow) {
  UnsettledGroups unsettled(
      UnsettledOptions{
          .warmup = absl::ZeroDuration(), .window = absl::Seconds(5), .max_lost_edges = 1},
      kStart);
  unsettled.MarkLost("e", {"a"}, 1, kStart);
  unsettled.MarkLost("f", {"b"}, 1, kStart);
  EXPECT_TRUE(unsettled.Unsettled("elsewhere", kStart + absl::Seconds(1)));
  unsettled.Sweep(kStart + absl::Seconds(6));
  EXPECT_FALSE(unsettled.Unsettled("elsewhere", kStart + absl::Seconds(6)));
}

// ------------------------------------------------------------------ History

EventPtr Numbered(int n) {
  return MakeEvent("chat.message", absl::StrCat(R"({"type":"chat.message","n":)", n, "}"));
}

std::vector<uint64_t> Offsets(const HistoryPage& page) {
  std::vector<uint64_t> out;
  for (const HistoryEntry& e : page.events) out.push_back(e.offset);
  return out;
}

TEST(HistoryTest, OffsetsCountPerGroupAndARecoveryGetsExactlyWhatCameAfter) {
  History history({.per_group = 5}, "ep1");
  const absl::Time t = absl::FromUnixSeconds(1000);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(history.Append("a", Numbered(i), t), uint64_t(i));
  EXPECT_EQ(history.Append("b", Numbered(9), t), 1u);
  HistoryPage page = history.Since("a", 1, "ep1", 0, t);
  EXPECT_TRUE(page.recovered);
  EXPECT_EQ(Offsets(page), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(page.latest, 3u);
  EXPECT_EQ(page.epoch, "ep1");
  // Up to date: recovered, nothing to send.
  EXPECT_TRUE(history.Since("a", 3, "ep1", 0, t).recovered);
  EXPECT_TRUE(history.Since("a", 3, "ep1", 0, t).events.empty());
  // Paging: two at a time.
  EXPECT_EQ(Offsets(history.Since("a", 0, "ep1", 2, t)), (std::vector<uint64_t>{1, 2}));
}

TEST(HistoryTest, AnotherEpochOrAGapTooOldIsNotRecoveredAndGetsTheLatest) {
  History history({.per_group = 3}, "ep1");
  const absl::Time t = absl::FromUnixSeconds(1000);
  for (int i = 1; i <= 6; ++i) history.Append("a", Numbered(i), t);
  // 4, 5, 6 are kept: a client at 2 missed 3, which is gone.
  HistoryPage gap = history.Since("a", 2, "ep1", 0, t);
  EXPECT_FALSE(gap.recovered);
  EXPECT_EQ(Offsets(gap), (std::vector<uint64_t>{4, 5, 6}));
  EXPECT_TRUE(history.Since("a", 3, "ep1", 0, t).recovered);
  HistoryPage restarted = history.Since("a", 5, "ep0", 2, t);
  EXPECT_FALSE(restarted.recovered);
  EXPECT_EQ(Offsets(restarted), (std::vector<uint64_t>{5, 6}));
  // An offset from another numbering (beyond the latest) is not recovered.
  EXPECT_FALSE(history.Since("a", 60, "ep1", 0, t).recovered);
  // A group never sent to: recovered from 0 only.
  EXPECT_TRUE(history.Since("none", 0, "ep1", 0, t).recovered);
  EXPECT_FALSE(history.Since("none", 4, "ep1", 0, t).recovered);
}

TEST(HistoryTest, EventsExpireAndTheByteBoundDropsTheOldestAnywhere) {
  const absl::Time t = absl::FromUnixSeconds(1000);
  History timed({.per_group = 10, .ttl = absl::Seconds(10)}, "e");
  timed.Append("a", Numbered(1), t);
  timed.Append("a", Numbered(2), t + absl::Seconds(6));
  HistoryPage later = timed.Since("a", 0, "e", 0, t + absl::Seconds(11));
  EXPECT_EQ(Offsets(later), (std::vector<uint64_t>{2}));
  EXPECT_FALSE(later.recovered);  // 1 is gone.

  const size_t one = Numbered(1)->ByteSize();
  History bounded({.per_group = 10, .ttl = absl::Hours(1), .max_bytes = 3 * one}, "e");
  bounded.Append("a", Numbered(1), t);
  bounded.Append("b", Numbered(2), t);
  bounded.Append("a", Numbered(3), t);
  bounded.Append("b", Numbered(4), t);  // Over: a's first goes.
  EXPECT_LE(bounded.bytes(), 3 * one);
  EXPECT_EQ(Offsets(bounded.Since("a", 0, "e", 0, t)), (std::vector<uint64_t>{2}));
  EXPECT_EQ(Offsets(bounded.Since("b", 0, "e", 0, t)), (std::vector<uint64_t>{1, 2}));
  // Flush: the events go, the offsets go on (an old offset is not recovered).
  bounded.Clear();
  EXPECT_EQ(bounded.bytes(), 0u);
  EXPECT_EQ(bounded.Append("a", Numbered(5), t), 3u);
  EXPECT_FALSE(bounded.Since("a", 1, "e", 0, t).recovered);

  History off({.per_group = 0}, "e");
  EXPECT_EQ(off.Append("a", Numbered(1), t), 0u);
  // No history is never "recovered", and names no epoch to recover under.
  EXPECT_FALSE(off.Since("a", 0, "e", 0, t).recovered);
  EXPECT_EQ(off.Since("a", 0, "e", 0, t).epoch, "");
}

TEST(HistoryTest, TheLatestPageAndAByteBoundedRecoveryPage) {
  History history({.per_group = 10}, "ep1");
  const absl::Time t = absl::FromUnixSeconds(1000);
  for (int i = 1; i <= 6; ++i) history.Append("a", Numbered(i), t);
  // A new joiner's recent history: the newest, oldest first, never "recovered".
  HistoryPage latest =
      history.Since("a", HistoryQuery{.epoch = "ep1", .limit = 2, .latest = true}, t);
  EXPECT_EQ(Offsets(latest), (std::vector<uint64_t>{5, 6}));
  EXPECT_FALSE(latest.recovered);
  // About two events' bytes: the oldest missed first (the caller pages on) ...
  const size_t one = Numbered(1)->ByteSize();
  HistoryPage page =
      history.Since("a", HistoryQuery{.since = 1, .epoch = "ep1", .max_bytes = 2 * one}, t);
  EXPECT_TRUE(page.recovered);
  EXPECT_EQ(Offsets(page), (std::vector<uint64_t>{2, 3}));
  // ... the newest when it is the latest, and always at least one.
  EXPECT_EQ(Offsets(history.Since("a", HistoryQuery{.latest = true, .max_bytes = 2 * one}, t)),
            (std::vector<uint64_t>{5, 6}));
  EXPECT_EQ(
      Offsets(history.Since("a", HistoryQuery{.since = 3, .epoch = "ep1", .max_bytes = 1}, t)),
      (std::vector<uint64_t>{4}));
}

TEST(HistoryTest, AGroupWithNoEventsLeftIsForgottenAndNumbersAgainUnderItsOwnEpoch) {
  History history({.per_group = 10, .ttl = absl::Seconds(10)}, "ep1");
  const absl::Time t = absl::FromUnixSeconds(1000);
  std::string epoch = "unset";
  EXPECT_EQ(history.Append("idle", Numbered(1), t, &epoch), 1u);
  EXPECT_EQ(epoch, "");  // The shard's epoch.
  history.Append("busy", Numbered(1), t + absl::Seconds(9));
  history.Sweep(t + absl::Seconds(11));  // idle's only event has expired; busy's has not.
  EXPECT_EQ(history.groups(), 1u);
  // idle again: 1, 2 ... under an epoch of its own, so its old position is not recovered.
  EXPECT_EQ(history.Append("idle", Numbered(2), t + absl::Seconds(12), &epoch), 1u);
  EXPECT_EQ(epoch, "ep1-1");
  HistoryPage old = history.Since("idle", 1, "ep1", 0, t + absl::Seconds(12));
  EXPECT_FALSE(old.recovered);
  EXPECT_EQ(old.epoch, "ep1-1");
  EXPECT_TRUE(history.Since("idle", 0, "ep1-1", 0, t + absl::Seconds(12)).recovered);
  // busy kept its numbering and the shard's epoch.
  EXPECT_EQ(history.Append("busy", Numbered(3), t + absl::Seconds(12), &epoch), 2u);
  EXPECT_EQ(epoch, "");
  // A group never seen says which epoch it will number under.
  EXPECT_EQ(history.Since("new", 0, "", 0, t).epoch, "ep1-1");
}

// ----------------------------------------------------------------- Presence

PresenceUser Ann() { return PresenceUser{"ann", "Ann"}; }

TEST(PresenceTest, TwoChannelsOfOneUserAreOneMemberThatLeavesAfterTheDebounce) {
  Presence presence(absl::Seconds(3));
  const absl::Time t = absl::FromUnixSeconds(1000);
  const PresenceUser ann = Ann();
  auto joined = presence.Join("room", "e1!a", &ann, /*watch=*/true, t);
  ASSERT_TRUE(joined.has_value());
  EXPECT_TRUE(joined->joined);
  EXPECT_EQ(joined->user.name, "Ann");
  EXPECT_EQ(joined->channel, "e1!a");
  // A second tab, and a renewal of the first: no news.
  EXPECT_FALSE(presence.Join("room", "e2!b", &ann, false, t).has_value());
  EXPECT_FALSE(presence.Join("room", "e1!a", &ann, true, t).has_value());
  PresenceSnapshot snapshot = presence.Get("room");
  ASSERT_EQ(snapshot.members.size(), 1u);
  EXPECT_EQ(snapshot.members[0].connections, 2u);
  EXPECT_EQ(snapshot.members[0].since, t);
  EXPECT_THAT(presence.Watchers("room"), ::testing::ElementsAre("e1!a"));
  // One tab goes: still a member. The last goes: a leave, once the debounce is over.
  presence.Leave("room", "e1!a", t);
  presence.Leave("room", "e2!b", t + absl::Seconds(1));
  EXPECT_TRUE(presence.Watchers("room").empty());
  EXPECT_TRUE(presence.Due(t + absl::Seconds(3)).empty());
  std::vector<PresenceChange> left = presence.Due(t + absl::Seconds(4));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_FALSE(left[0].joined);
  EXPECT_EQ(left[0].user.id, "ann");
  EXPECT_TRUE(presence.Get("room").members.empty());
  EXPECT_EQ(presence.groups(), 0u);
  EXPECT_TRUE(presence.Due(t + absl::Seconds(60)).empty());  // Said once.
}

TEST(PresenceTest, AReconnectWithinTheDebounceIsNeitherALeaveNorAJoin) {
  Presence presence(absl::Seconds(3));
  const absl::Time t = absl::FromUnixSeconds(1000);
  const PresenceUser ann = Ann();
  ASSERT_TRUE(presence.Join("room", "e1!a", &ann, true, t).has_value());
  presence.Leave("room", "e1!a", t);
  EXPECT_FALSE(presence.Join("room", "e2!c", &ann, true, t + absl::Seconds(2)).has_value());
  EXPECT_TRUE(presence.Due(t + absl::Seconds(10)).empty());
  EXPECT_EQ(presence.Get("room").members.size(), 1u);
  // Anonymous channels are not members; a watching one gets the events.
  EXPECT_FALSE(presence.Join("room", "e3!d", nullptr, true, t).has_value());
  EXPECT_EQ(presence.Get("room").members.size(), 1u);
  EXPECT_EQ(presence.Watchers("room").size(), 2u);
}

TEST(PresenceTest, AnOwnersUsersLeaveAfterItsOwnDelayUnlessTheyAreBackFirst) {
  Presence presence(absl::Seconds(3));
  const absl::Time t = absl::FromUnixSeconds(1000);
  const PresenceUser ann = Ann(), bo{"bo", "Bo"};
  presence.Join("room", "e1.x!a", &ann, true, t);
  presence.Join("room", "e2.y!b", &bo, true, t);
  presence.Join("room", "e2.y!c", &ann, false, t);
  // e2 is lost: Bo leaves half a second later; Ann keeps her other tab.
  presence.RemoveOwner("y!", {"room"}, absl::Milliseconds(500), t);
  EXPECT_TRUE(presence.Due(t + absl::Milliseconds(400)).empty());
  std::vector<PresenceChange> left = presence.Due(t + absl::Milliseconds(500));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].user.id, "bo");
  ASSERT_EQ(presence.Get("room").members.size(), 1u);
  EXPECT_EQ(presence.Get("room").members[0].connections, 1u);
  // e1's stream is cut and back with its replay in time: Ann never left.
  presence.RemoveOwner("x!", {"room"}, absl::Milliseconds(500), t);
  EXPECT_FALSE(presence.Join("room", "e1.x!a", &ann, true, t + absl::Milliseconds(10)));
  EXPECT_TRUE(presence.Due(t + absl::Seconds(5)).empty());
}

}  // namespace
}  // namespace groupsvc
