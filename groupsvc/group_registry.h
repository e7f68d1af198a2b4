// GroupRegistry: the state of the channel layer (groups, queued events, attached
// edges), with Django Channels' semantics and no networking.
//
// Channels whose owner prefix (the part up to '!') belongs to an attached edge
// are delivered through that edge's EdgeSink; every other channel keeps a
// bounded queue here, drained by Receive. A group_send makes one Delivery per
// edge holding members, never one per member.
//
//   GroupRegistry registry(RegistryOptions{}, &clock);
//   registry.GroupAdd("chat_lobby", "edge-1!c1");
//   absl::StatusOr<SendReport> r = registry.GroupSend("chat_lobby", event);
//
// Edge ids: while a stream of an edge id is attached, only a stream with the
// same Hello.incarnation (the same process reconnecting) may replace it; any
// other is refused, so two processes given one id cannot evict each other.
//
// Unsettled group_sends: a group_send is reported `unsettled` when the group
// may have members the registry cannot see: during `warmup` after it starts
// (edges are re-attaching and replaying), and for `unsettled_window` after an
// edge's stream was lost (not closed by the edge, not drained), in each group
// that edge had members in, until that edge id re-attaches and its first
// message (the replay) is applied (ReplayApplied).
//
// Thread-safe. Groups and channel queues are sharded by name, each shard under
// its own mutex, so a group_send to a huge room holds one shard for as long as
// it takes to copy the member names, and never calls out while holding a lock.
// Lock order: edges_mu_, then a shard's mu, then unsettled_mu_ (a leaf).
#ifndef CHAT_GROUPSVC_GROUP_REGISTRY_H_
#define CHAT_GROUPSVC_GROUP_REGISTRY_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "groupsvc/event.h"
#include "groupsvc/queue_quota.h"
#include "shared/clock.h"

namespace groupsvc {

// The attach stream of one edge, as the registry sees it.
class EdgeSink {
 public:
  virtual ~EdgeSink() = default;
  // Queues one event for `channels`, all owned by this edge. False when the
  // stream's outbound queue is full or closed: the copies are lost.
  virtual bool Deliver(const EventPtr& event, std::vector<std::string> channels,
                       absl::string_view group) = 0;
  // A newer stream of the same edge process (same edge id and incarnation)
  // took over; this one should end.
  virtual void Replaced() = 0;
};

// Waits for the next event of one channel (a pending Receive).
class Receiver {
 public:
  virtual ~Receiver() = default;
  // Called at most once, without registry locks held.
  virtual void OnEvent(EventPtr event) = 0;
};

struct RegistryOptions {
  // Undelivered events one queued channel holds.
  size_t capacity = 100;
  // (glob pattern, capacity); the first pattern that matches a channel wins.
  std::vector<std::pair<std::string, size_t>> capacity_overrides;
  absl::Duration expiry = absl::Seconds(60);
  absl::Duration group_expiry = absl::Seconds(86400);
  // Larger events (type plus JSON) are refused with INVALID_ARGUMENT.
  size_t max_event_bytes = 256 << 10;
  // Bounds on everything queued here, across channels.
  size_t max_queued_bytes = 256 << 20;
  size_t max_receivers_per_channel = 16;
  // After the registry is created, every group_send is unsettled for this long
  // (edges re-attach and replay their memberships after a restart). 0: none.
  absl::Duration warmup = absl::Seconds(3);
  // How long the groups of a lost edge stay unsettled at most, when it does
  // not come back and replay first.
  absl::Duration unsettled_window = absl::Seconds(5);
  // Lost edges tracked one by one; beyond this many, every group is unsettled
  // until the window of the latest loss has passed.
  size_t max_lost_edges = 256;
};

// What an edge's hello says, and where it came from.
struct AttachRequest {
  std::string edge_id;
  std::string channel_prefix;
  // Random bytes chosen once per edge process; never shown by any RPC or log.
  std::string incarnation;
  // The peer address, for messages and logs only ("" if unknown).
  std::string peer;
};
inline constexpr size_t kMinIncarnationBytes = 16;
inline constexpr size_t kMaxIncarnationBytes = 256;

// How an edge's stream ended, which decides whether its groups are unsettled.
enum class DetachReason {
  // The edge closed its side, or groupsvc drained it: its members left on purpose.
  kClosed,
  // Cancelled, broken, or ended by an error: the edge may still think its
  // members are in their groups, and will re-attach and replay them.
  kLost,
};

struct SendReport {
  uint32_t delivered = 0;
  uint32_t dropped = 0;
  // The group may have members the registry cannot see now (see above).
  bool unsettled = false;
};

struct MemberInfo {
  std::string channel;
  std::string edge_id;  // Empty when no attached edge owns the channel.
  absl::Time joined;
  absl::Time renewed;
};

struct GroupInfo {
  std::string name;
  std::vector<MemberInfo> members;  // Sorted by channel name.
};

struct GroupSummary {
  std::string name;
  size_t size = 0;
};

struct GroupPage {
  std::vector<GroupSummary> groups;
  std::string next_page_token;
};

struct StatsSnapshot {
  uint64_t groups = 0;
  uint64_t memberships = 0;
  uint64_t channels = 0;
  uint64_t queued_events = 0;
  uint64_t attached_edges = 0;
  uint64_t events_in = 0;
  uint64_t events_out = 0;
  uint64_t stream_deliveries = 0;
  uint64_t unsettled_group_sends = 0;
  // Lost edges whose groups are unsettled (expired ones may linger until Sweep).
  uint64_t lost_edges = 0;
  std::array<uint64_t, kDropReasonCount> drops{};
};

struct Attachment {
  uint64_t generation = 0;
  bool replaced_previous = false;
};

class GroupRegistry {
 public:
  GroupRegistry(RegistryOptions options, const chat::Clock* clock);
  GroupRegistry(const GroupRegistry&) = delete;
  GroupRegistry& operator=(const GroupRegistry&) = delete;

  // --- Edges.
  // Registers an edge's stream. The same edge id with the same incarnation
  // replaces the older stream (its memberships are removed and it is told so);
  // with another incarnation it is ALREADY_EXISTS, as is a prefix held by
  // another edge id. An incarnation shorter than kMinIncarnationBytes (or
  // longer than kMaxIncarnationBytes) is INVALID_ARGUMENT.
  absl::StatusOr<Attachment> AttachEdge(const AttachRequest& hello, std::shared_ptr<EdgeSink> sink);
  // Removes the edge and all its channels' memberships, unless a newer stream
  // (another generation) has replaced it meanwhile. kLost leaves the groups it
  // had members in unsettled.
  void DetachEdge(absl::string_view edge_id, uint64_t generation, DetachReason reason);
  // The first message of the stream `generation` of `edge_id` (its replay of
  // memberships) has been applied: its groups are settled again, unless a
  // newer stream of the edge was lost meanwhile.
  void ReplayApplied(absl::string_view edge_id, uint64_t generation);

  // --- The channel layer.
  // `quota`, if set, is charged for the copies queued on channels no edge
  // owns (and refunded when they leave the queue); past its limit, a copy is
  // refused like one for a full channel (RESOURCE_EXHAUSTED for Send).
  absl::Status Send(absl::string_view channel, EventPtr event,
                    const std::shared_ptr<QueueQuota>& quota = nullptr);
  absl::Status GroupAdd(absl::string_view group, absl::string_view channel);
  absl::Status GroupDiscard(absl::string_view group, absl::string_view channel);
  absl::StatusOr<SendReport> GroupSend(absl::string_view group, EventPtr event,
                                       const std::shared_ptr<QueueQuota>& quota = nullptr);
  void Flush();
  // The next queued event of `channel`. When there is none and `receiver` is
  // set, it is registered and the result is nullptr: the receiver then gets the
  // next event sent, unless CancelReceive removes it first.
  absl::StatusOr<EventPtr> Receive(absl::string_view channel,
                                   std::shared_ptr<Receiver> receiver = nullptr);
  // True if the receiver was still waiting (it will not be called).
  bool CancelReceive(absl::string_view channel, const Receiver* receiver);
  // `<prefix>.<process-random>!<random>`, valid and unused.
  absl::StatusOr<std::string> NewChannel(absl::string_view prefix);

  // --- Inspection.
  GroupPage ListGroups(absl::string_view name_prefix, size_t page_size,
                       absl::string_view page_token) const;
  absl::StatusOr<GroupInfo> GetGroup(absl::string_view name) const;
  StatsSnapshot Stats() const;

  // Drops expired events and memberships. Lookups skip expired entries anyway;
  // this bounds the memory they hold.
  void Sweep();
  // Drops counted outside the registry (e.g. events that expired on a stream).
  void CountDrop(DropReason reason, uint64_t n);

  const RegistryOptions& options() const { return options_; }

 private:
  struct Membership {
    absl::Time joined;
    absl::Time renewed;
  };
  // Members keyed by owner prefix ("" for names without '!') and then by
  // channel, so that a group_send makes one delivery per owner.
  using Bucket = absl::flat_hash_map<std::string, Membership>;
  struct Group {
    absl::flat_hash_map<std::string, Bucket> by_owner;
    size_t size = 0;
  };
  struct QueuedEvent {
    EventPtr event;
    absl::Time expires;
    std::shared_ptr<QueueQuota> quota;  // Charged for this copy; may be null.
  };
  struct ChannelQueue {
    std::deque<QueuedEvent> events;
    std::deque<std::shared_ptr<Receiver>> receivers;
  };
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, Group> groups ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, ChannelQueue> channels ABSL_GUARDED_BY(mu);
  };
  struct EdgeEntry {
    std::string edge_id;
    std::string incarnation;
    std::string peer;
    std::shared_ptr<EdgeSink> sink;
    uint64_t generation = 0;
  };
  // The groups an edge had members in when its stream was lost.
  struct LostEdge {
    absl::flat_hash_set<std::string> groups;
    absl::Time until;
    // A replay by a stream of at least this generation settles them.
    uint64_t settled_by = 0;
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(absl::string_view name) const;
  absl::Status ValidateEvent(const EventPtr& event) const;
  std::shared_ptr<EdgeSink> FindEdge(absl::string_view prefix) const;
  size_t CapacityFor(absl::string_view channel) const;
  // Queues on a channel no edge owns, or hands it to a waiting receiver.
  absl::Status Enqueue(absl::string_view channel, const EventPtr& event, absl::Time now,
                       const std::shared_ptr<QueueQuota>& quota);
  // Accounts for a copy that leaves a queue (not the queue itself).
  void Unqueued(const QueuedEvent& q);
  void DropExpired(ChannelQueue& queue, absl::Time now);
  bool Lapsed(const Membership& m, absl::Time now) const {
    return m.renewed + options_.group_expiry <= now;
  }
  // Removes the memberships of `prefix`'s channels; adds the groups they were
  // in to `groups` if set.
  void RemoveOwnerMemberships(absl::string_view prefix,
                              absl::flat_hash_set<std::string>* groups = nullptr);
  // The groups in which `prefix`'s channels have members.
  absl::flat_hash_set<std::string> OwnerGroups(absl::string_view prefix) const;
  // Records (or extends) the loss of `edge_id` before its memberships go, so
  // that a group_send that no longer sees them sees the record.
  void MarkLost(absl::string_view edge_id, absl::flat_hash_set<std::string> groups,
                uint64_t settled_by, absl::Time now);
  void AddLostGroups(absl::string_view edge_id, absl::flat_hash_set<std::string> groups);
  bool Unsettled(absl::string_view group, absl::Time now) const;
  void SweepLostEdges(absl::Time now);

  const RegistryOptions options_;
  const chat::Clock* const clock_;
  mutable std::array<Shard, kShards> shards_;

  mutable absl::Mutex edges_mu_;
  absl::flat_hash_map<std::string, EdgeEntry> edges_by_prefix_ ABSL_GUARDED_BY(edges_mu_);
  absl::flat_hash_map<std::string, std::string> prefix_by_edge_ ABSL_GUARDED_BY(edges_mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(edges_mu_) = 1;

  const absl::Time warmup_until_;
  // False once the warm-up has passed, so that group_sends skip its check.
  mutable std::atomic<bool> warming_up_;
  mutable absl::Mutex unsettled_mu_;
  absl::flat_hash_map<std::string, LostEdge> lost_edges_ ABSL_GUARDED_BY(unsettled_mu_);
  // Set when more than max_lost_edges are lost at once: every group is unsettled until then.
  absl::Time all_unsettled_until_ ABSL_GUARDED_BY(unsettled_mu_) = absl::InfinitePast();
  // lost_edges_.size(), plus one while all_unsettled_until_ is set: read
  // without the lock, so that a group_send with nothing unsettled takes none.
  std::atomic<size_t> unsettled_entries_{0};
  std::atomic<uint64_t> unsettled_group_sends_{0};

  std::atomic<uint64_t> queued_bytes_{0};
  std::atomic<uint64_t> queued_events_{0};
  std::atomic<uint64_t> events_in_{0};
  std::atomic<uint64_t> events_out_{0};
  std::atomic<uint64_t> stream_deliveries_{0};
  std::array<std::atomic<uint64_t>, kDropReasonCount> drops_{};
  std::atomic<uint64_t> channel_counter_{0};
  const std::string process_tag_;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_GROUP_REGISTRY_H_
