// attach_fuzz: groupsvc's handling of what an edge sends on its Attach stream
// (groupsvc/rpc/wire.h, groupsvc/rpc/commands.h, groupsvc/registry/group_registry.h).
//
// Input: the bytes of one EdgeMessage as it arrives on the stream, parsed with
// groupsvc::ParseWire (the stream's own parser; a text-format EdgeMessage is
// tried too, for hand-written inputs). Two edges are attached beforehand to a
// GroupRegistry with small limits and a fake clock: "edge-1!" (its stream
// takes everything) and "edge-2!" (its stream is full). The message's hello,
// if any, is handled as AttachStream does (a third edge, or a fake one's
// process reconnecting); then every command goes through ApplyCommand, and
// the request_id (chosen by the edge, so by the fuzzer) also moves the clock
// and may break, re-attach or close edge-1's stream, flush the layer, or have
// a backend Receive from the command's channel. Checked after each command:
//   - the Ack echoes the request_id; its code is a google.rpc.Code; non-zero
//     codes say why; a command with no operation is INVALID_ARGUMENT;
//   - a group_add that succeeded has valid names and the member is listed; a
//     group_discard that succeeded leaves it unlisted;
//   - a group_send's delivered + dropped is the number of members listed just
//     before; copies handed to an edge name only that edge's channels, all
//     members of the group; it is unsettled during the warm-up and in the
//     groups of an edge lost (or replaced) and not yet replayed, and never
//     when no edge is lost after the warm-up;
//   - Stats agree with ListGroups/GetGroup (after a Sweep, exactly), counters
//     never go back, queues stay within their bounds, events_out moves by
//     what was reported;
//   - a hello attaches only with valid names, and replaces an attached edge
//     only with that process's incarnation (never another id's prefix);
// and at the end, Flush and detaching every edge leave the registry empty.
// A crash means an edge (or anyone who can open an Attach stream) can make the
// registry inconsistent, lose a copy without counting it, or misbehave in memory.
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "groupsvc/registry/group_registry.h"
#include "groupsvc/rpc/commands.h"
#include "groupsvc/rpc/wire.h"
#include "groupsvc/v1/layer.pb.h"
#include "shared/clock.h"
#include "shared/names.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using groupsvc::GroupRegistry;
namespace v1 = groupsvc::v1;

class FakeSink : public groupsvc::EdgeSink {
 public:
  FakeSink(std::string prefix, bool accepts) : prefix_(std::move(prefix)), accepts_(accepts) {}
  bool Deliver(const groupsvc::EventPtr& event, std::vector<std::string> channels,
               absl::string_view group, uint64_t offset, absl::string_view epoch) override {
    FUZZ_CHECK(event != nullptr && !channels.empty());
    for (const std::string& c : channels) {
      FUZZ_CHECK(chat::ChannelOwnerPrefix(c) == prefix_);  // Only this edge's channels.
    }
    deliveries.push_back({std::string(group), std::move(channels)});
    return accepts_;
  }
  void Replaced() override { replaced = true; }

  std::vector<std::pair<std::string, std::vector<std::string>>> deliveries;
  bool replaced = false;

 private:
  const std::string prefix_;
  const bool accepts_;
};

groupsvc::RegistryOptions Options() {
  groupsvc::RegistryOptions o;
  o.capacity = 3;
  o.capacity_overrides = {{"special*", 1}};
  o.expiry = absl::Seconds(10);
  o.group_expiry = absl::Seconds(30);
  o.max_event_bytes = 512;
  o.max_queued_bytes = 2048;
  o.max_receivers_per_channel = 2;
  o.warmup = absl::Seconds(2);
  o.unsettled_window = absl::Seconds(5);
  o.max_lost_edges = 4;
  return o;
}

// Every live group and its members, as the inspection API shows them.
std::vector<groupsvc::GroupInfo> AllGroups(const GroupRegistry& registry) {
  std::vector<groupsvc::GroupInfo> out;
  std::string token;
  do {
    groupsvc::GroupPage page = registry.ListGroups("", 7, token);
    for (const groupsvc::GroupSummary& g : page.groups) {
      FUZZ_CHECK(g.name > token && g.size > 0);
      absl::StatusOr<groupsvc::GroupInfo> info = registry.GetGroup(g.name);
      FUZZ_CHECK(info.ok() && info->members.size() == g.size);
      for (size_t i = 1; i < info->members.size(); ++i) {
        FUZZ_CHECK(info->members[i - 1].channel < info->members[i].channel);
      }
      out.push_back(*std::move(info));
      token = g.name;
    }
    if (page.next_page_token.empty()) break;
    FUZZ_CHECK(page.next_page_token == token);
  } while (true);
  return out;
}

std::set<std::string> Members(const GroupRegistry& registry, const std::string& group) {
  std::set<std::string> members;
  absl::StatusOr<groupsvc::GroupInfo> info = registry.GetGroup(group);
  if (info.ok()) {
    for (const auto& m : info->members) members.insert(m.channel);
  }
  return members;
}

// Edges attached before the message: id, prefix, incarnation; edge-2's stream is full.
struct FakeEdge {
  const char* id;
  const char* prefix;
  const char* incarnation;
  bool accepts;
};
constexpr FakeEdge kEdges[2] = {{"edge-1", "edge-1!", "0123456789abcdef", true},
                                {"edge-2", "edge-2!", "fedcba9876543210", false}};

class Harness {
 public:
  Harness() : registry_(Options(), &clock_), start_(clock_.Now()) {
    for (int i = 0; i < 2; ++i) Attach(i);
  }

  void Run(const v1::EdgeMessage& message) {
    if (message.has_hello()) Hello(message.hello());
    for (const v1::Command& command : message.commands()) {
      const int op = Before(command.request_id());
      Apply(command, op);
      CheckStats();
    }
    if (!hello_edge_.empty()) {
      // AttachStream: the first message applied is the edge's replay.
      registry_.ReplayApplied(hello_edge_, hello_generation_);
      lost_.erase(hello_edge_);
    }
    Finish();
  }

 private:
  void Attach(int i) {
    sinks_[i] = std::make_shared<FakeSink>(kEdges[i].prefix, kEdges[i].accepts);
    absl::StatusOr<groupsvc::Attachment> a = registry_.AttachEdge(
        {kEdges[i].id, kEdges[i].prefix, kEdges[i].incarnation, "fuzz"}, sinks_[i]);
    FUZZ_CHECK(a.ok() && !a->replaced_previous);
    generation_[i] = a->generation;
  }

  // The groups in which the channels of `prefix` are listed members.
  std::set<std::string> GroupsOf(const std::string& prefix) {
    std::set<std::string> groups;
    for (const auto& g : AllGroups(registry_)) {
      for (const auto& m : g.members) {
        if (chat::ChannelOwnerPrefix(m.channel) == prefix) groups.insert(g.name);
      }
    }
    return groups;
  }

  void Lose(const std::string& edge_id, const std::string& prefix) {
    lost_[edge_id] = {GroupsOf(prefix), clock_.Now() + Options().unsettled_window};
  }

  // As AttachStream::HandleHello: a third edge, or a fake one's process reconnecting.
  void Hello(const v1::Hello& h) {
    groupsvc::AttachRequest request{h.edge_id(), h.channel_prefix(), h.incarnation(), "fuzz"};
    const std::string key(chat::ChannelOwnerPrefix(h.channel_prefix()));
    auto sink = std::make_shared<FakeSink>(key, true);
    int same_id = -1;
    for (int i = 0; i < 2; ++i) {
      if (h.edge_id() == kEdges[i].id) same_id = i;
    }
    std::set<std::string> groups;
    if (same_id >= 0) groups = GroupsOf(kEdges[same_id].prefix);
    absl::StatusOr<groupsvc::Attachment> a = registry_.AttachEdge(request, sink);
    if (!a.ok()) {
      FUZZ_CHECK(!sinks_[0]->replaced && !sinks_[1]->replaced);
      return;
    }
    FUZZ_CHECK(chat::ValidateGroupName(h.edge_id()).ok());
    FUZZ_CHECK(chat::ValidateChannelName(h.channel_prefix()).ok());
    FUZZ_CHECK(absl::EndsWith(h.channel_prefix(), "!") && key.size() > 1);
    FUZZ_CHECK(h.incarnation().size() >= groupsvc::kMinIncarnationBytes &&
               h.incarnation().size() <= groupsvc::kMaxIncarnationBytes);
    for (int i = 0; i < 2; ++i) {
      // A prefix held by another attached edge id is refused.
      if (i != same_id) FUZZ_CHECK(key != kEdges[i].prefix);
    }
    if (same_id >= 0) {
      // Only the same process (the same incarnation) may replace a stream.
      FUZZ_CHECK(h.incarnation() == kEdges[same_id].incarnation);
      FUZZ_CHECK(a->replaced_previous && sinks_[same_id]->replaced);
      generation_[same_id] = 0;  // That stream is over; the hello's is the edge now.
      taken_[same_id] = true;
      lost_[h.edge_id()] = {groups, clock_.Now() + Options().unsettled_window};
    } else {
      FUZZ_CHECK(!a->replaced_previous);
    }
    hello_edge_ = h.edge_id();
    hello_generation_ = a->generation;
    hello_sink_ = sink;
  }

  // What the request_id asks for besides its command (it is the edge's to
  // choose): the clock moves by (id & 63) quarter seconds, and edge-1 may
  // break, come back, close, or the layer be flushed. Returns the op.
  int Before(uint64_t id) {
    clock_.Advance(absl::Milliseconds(250) * static_cast<int64_t>(id & 0x3F));
    const int op = static_cast<int>((id >> 6) & 0xF);
    switch (op) {
      case 2:  // Edge-1's stream breaks: its groups are unsettled for the window.
        if (generation_[0] != 0) {
          std::set<std::string> groups = GroupsOf(kEdges[0].prefix);
          registry_.DetachEdge("edge-1", generation_[0], groupsvc::DetachReason::kLost);
          generation_[0] = 0;
          // Recorded even with no listed groups: the registry also counts
          // memberships that lapsed but are not swept yet (more unsettled, never less).
          lost_["edge-1"] = {groups, clock_.Now() + Options().unsettled_window};
        }
        break;
      case 3:  // Edge-1 comes back and replays.
        if (generation_[0] == 0 && !taken_[0]) {
          Attach(0);
          registry_.ReplayApplied("edge-1", generation_[0]);
          lost_.erase("edge-1");
        }
        break;
      case 4:  // Edge-1 closes its stream: nothing becomes unsettled.
        if (generation_[0] != 0) {
          registry_.DetachEdge("edge-1", generation_[0], groupsvc::DetachReason::kClosed);
          generation_[0] = 0;
        }
        break;
      case 5:
        registry_.Flush();
        break;
    }
    return op;
  }

  uint64_t FullDrops(const groupsvc::StatsSnapshot& s) {
    return s.drops[static_cast<size_t>(groupsvc::DropReason::kChannelFull)] +
           s.drops[static_cast<size_t>(groupsvc::DropReason::kEdgeQueueFull)];
  }

  void Apply(const v1::Command& command, int op) {
    const groupsvc::StatsSnapshot before = registry_.Stats();
    std::string group;
    std::set<std::string> members;
    if (command.has_group_send()) {
      group = command.group_send().group();
      if (chat::ValidateGroupName(group).ok()) members = Members(registry_, group);
    }
    FakeSink* sinks[3] = {sinks_[0].get(), sinks_[1].get(), hello_sink_.get()};
    size_t deliveries_before[3];
    for (int i = 0; i < 3; ++i) deliveries_before[i] = sinks[i] ? sinks[i]->deliveries.size() : 0;

    const v1::Ack ack = groupsvc::ApplyCommand(registry_, command);

    FUZZ_CHECK(ack.request_id() == command.request_id());
    FUZZ_CHECK(ack.code() >= 0 && ack.code() <= 16);
    FUZZ_CHECK((ack.code() == 0) == ack.message().empty());
    const bool ok = ack.code() == 0;
    const groupsvc::StatsSnapshot after = registry_.Stats();
    std::string channel;
    switch (command.op_case()) {
      case v1::Command::kGroupAdd: {
        const auto& c = command.group_add();
        channel = c.channel();
        FUZZ_CHECK(ok == (chat::ValidateGroupName(c.group()).ok() &&
                          chat::ValidateChannelName(c.channel()).ok()));
        if (ok) FUZZ_CHECK(Members(registry_, c.group()).count(c.channel()) == 1);
        break;
      }
      case v1::Command::kGroupDiscard: {
        const auto& c = command.group_discard();
        FUZZ_CHECK(ok == (chat::ValidateGroupName(c.group()).ok() &&
                          chat::ValidateChannelName(c.channel()).ok()));
        if (ok) FUZZ_CHECK(Members(registry_, c.group()).count(c.channel()) == 0);
        break;
      }
      case v1::Command::kSend: {
        const auto& c = command.send();
        channel = c.channel();
        if (ok) {
          FUZZ_CHECK(chat::ValidateChannelName(c.channel()).ok() && !c.event().type().empty());
          FUZZ_CHECK(after.events_out == before.events_out + 1);
        } else if (ack.code() == static_cast<int>(absl::StatusCode::kResourceExhausted)) {
          FUZZ_CHECK(FullDrops(after) == FullDrops(before) + 1);  // Counted.
        }
        break;
      }
      case v1::Command::kGroupSend: {
        if (!ok) {
          FUZZ_CHECK(ack.delivered() == 0 && ack.dropped() == 0 && !ack.unsettled());
          break;
        }
        FUZZ_CHECK(chat::ValidateGroupName(group).ok());
        // Every member listed got a copy or is counted as dropped.
        FUZZ_CHECK(ack.delivered() + ack.dropped() == members.size());
        FUZZ_CHECK(after.events_out == before.events_out + ack.delivered());
        FUZZ_CHECK(FullDrops(after) == FullDrops(before) + ack.dropped());
        for (int i = 0; i < 3; ++i) {
          if (sinks[i] == nullptr) continue;
          for (size_t d = deliveries_before[i]; d < sinks[i]->deliveries.size(); ++d) {
            FUZZ_CHECK(sinks[i]->deliveries[d].first == group);
            for (const std::string& c : sinks[i]->deliveries[d].second) {
              FUZZ_CHECK(members.count(c) == 1);
            }
          }
        }
        // Unsettled when a member may be missing (the warm-up, or an edge with
        // members in the group lost and not yet replayed), and only then.
        const absl::Time now = clock_.Now();
        const bool warming = now < start_ + Options().warmup;
        bool lost_here = false, lost_any = false;
        for (const auto& [edge, lost] : lost_) {
          if (now >= lost.until) continue;
          lost_any = true;
          lost_here = lost_here || lost.groups.count(group) > 0;
        }
        if (warming || lost_here) FUZZ_CHECK(ack.unsettled());
        if (!warming && !lost_any) FUZZ_CHECK(!ack.unsettled());
        break;
      }
      case v1::Command::OP_NOT_SET:
        FUZZ_CHECK(ack.code() == static_cast<int>(absl::StatusCode::kInvalidArgument));
        break;
    }
    FUZZ_CHECK(after.events_in >= before.events_in && after.events_out >= before.events_out);
    for (size_t i = 0; i < groupsvc::kDropReasonCount; ++i) {
      FUZZ_CHECK(after.drops[i] >= before.drops[i]);
    }
    if (op == 1 && !channel.empty()) {
      // A backend takes the next event of the channel (one no edge owns).
      const groupsvc::StatsSnapshot s0 = registry_.Stats();
      absl::StatusOr<groupsvc::EventPtr> e = registry_.Receive(channel);
      const groupsvc::StatsSnapshot s1 = registry_.Stats();
      // Expired events are dropped (and counted) first; then one is taken, if any.
      const size_t kExpired = static_cast<size_t>(groupsvc::DropReason::kExpired);
      const uint64_t expired = s1.drops[kExpired] - s0.drops[kExpired];
      const uint64_t taken = e.ok() && *e != nullptr ? 1 : 0;
      FUZZ_CHECK(s1.queued_events + expired + taken == s0.queued_events);
      if (!e.ok()) {
        FUZZ_CHECK(e.status().code() == absl::StatusCode::kInvalidArgument ||
                   e.status().code() == absl::StatusCode::kFailedPrecondition);
      }
    }
  }

  size_t Attached() const {
    return (generation_[0] != 0) + (generation_[1] != 0) + (hello_sink_ != nullptr);
  }

  void CheckStats() {
    const std::vector<groupsvc::GroupInfo> groups = AllGroups(registry_);
    groupsvc::StatsSnapshot s = registry_.Stats();
    uint64_t live = 0;
    for (const auto& g : groups) live += g.members.size();
    FUZZ_CHECK(s.memberships >= live && s.groups >= groups.size());
    FUZZ_CHECK(s.queued_events <= s.channels * Options().capacity);
    FUZZ_CHECK(s.attached_edges == Attached());
    registry_.Sweep();
    s = registry_.Stats();
    FUZZ_CHECK(s.memberships == live && s.groups == groups.size());
  }

  void Finish() {
    registry_.Flush();
    groupsvc::StatsSnapshot s = registry_.Stats();
    FUZZ_CHECK(s.groups == 0 && s.memberships == 0 && s.queued_events == 0);
    if (!hello_edge_.empty()) {
      registry_.DetachEdge(hello_edge_, hello_generation_, groupsvc::DetachReason::kClosed);
    }
    for (int i = 0; i < 2; ++i) {
      if (generation_[i] != 0) {
        registry_.DetachEdge(kEdges[i].id, generation_[i], groupsvc::DetachReason::kClosed);
      }
    }
    FUZZ_CHECK(registry_.Stats().attached_edges == 0);
  }

  struct Lost {
    std::set<std::string> groups;
    absl::Time until;
  };

  chat::FakeClock clock_;
  GroupRegistry registry_;
  const absl::Time start_;
  std::shared_ptr<FakeSink> sinks_[2];
  uint64_t generation_[2] = {0, 0};  // 0: not attached (as a fake edge).
  bool taken_[2] = {false, false};   // The hello's stream replaced it.
  std::shared_ptr<FakeSink> hello_sink_;
  std::string hello_edge_;
  uint64_t hello_generation_ = 0;
  std::map<std::string, Lost> lost_;
};

class Silent : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Invalid UTF-8 in a string is logged by protobuf as it refuses it; not here.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  v1::EdgeMessage message;
  grpc::Slice slice(data, size);
  const grpc::ByteBuffer buffer(&slice, 1);
  if (!groupsvc::ParseWire(buffer, &message).ok()) {
    FUZZ_CHECK(message.ByteSizeLong() == 0);  // Refused whole: nothing half-parsed.
    google::protobuf::TextFormat::Parser text;
    Silent silent;
    text.RecordErrorsTo(&silent);
    if (!text.ParseFromString(std::string(reinterpret_cast<const char*>(data), size), &message)) {
      return 0;
    }
  }
  if (message.commands_size() > 64) return 0;  // Bounded work per input.
  Harness harness;
  harness.Run(message);
  return 0;
}
