// GroupRegistry: the state of the channel layer, with Django Channels'
// semantics and no networking: a small facade over its parts, each in
// groupsvc/registry/ and each with its own lock:
//   EdgeDirectory    the attached edges and the channel prefix each owns;
//   GroupTable       memberships (one expiry walker: Sweep);
//   Mailboxes        the queues of channels no edge owns, and waiting receivers;
//   UnsettledGroups  the groups that may have members the registry cannot see;
//   History          each group's latest events;
//   Presence         each group's signed-in users;
//   Users            the connections of the users placed on this shard.
// The facade decides where an event goes: to a channel whose owner prefix
// belongs to an attached edge through that edge's EdgeSink (a group_send makes
// one Delivery per edge holding members, never one per member), to a mailbox
// otherwise.
//
//   GroupRegistry registry(RegistryOptions{}, &clock);
//   registry.GroupAdd("chat_lobby", "edge-1!c1");
//   absl::StatusOr<SendReport> r = registry.GroupSend("chat_lobby", event);
//
// Unsettled group_sends: a group_send is reported `unsettled` when the group
// may have members the registry cannot see: during `warmup` after it starts,
// and for `unsettled_window` after an edge's stream was lost (not closed by
// the edge, not drained), in each group that edge had members in, until that
// edge id re-attaches and its first message (the replay) is applied
// (ReplayApplied).
//
// Thread-safe. It calls out (EdgeSink::Deliver, Receiver::OnEvent, through
// Mailboxes) holding no lock of its parts; a group_send holds only its
// group's send_order_ lock while it hands the event on, so that every edge
// sees a group's offsets in order (sinks and receivers must not call back
// into a group_send of the same group).
// Lock order: the edge directory, then a group shard, then the unsettled set
// (or the users).
// Lifetime: owned by GroupServer, which outlives every call; it holds each
// attached edge's sink (its AttachStream) by shared_ptr until the edge
// detaches, so a delivery racing a detach reaches a live stream that knows
// it is closed.
#ifndef CHAT_GROUPSVC_REGISTRY_GROUP_REGISTRY_H_
#define CHAT_GROUPSVC_REGISTRY_GROUP_REGISTRY_H_

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
#include "groupsvc/registry/edge_directory.h"
#include "groupsvc/registry/event.h"
#include "groupsvc/registry/group_table.h"
#include "groupsvc/registry/history.h"
#include "groupsvc/registry/mailboxes.h"
#include "groupsvc/registry/presence.h"
#include "groupsvc/registry/queue_quota.h"
#include "groupsvc/registry/unsettled_groups.h"
#include "groupsvc/registry/users.h"
#include "shared/clock.h"

namespace groupsvc {

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
  // The latest events of each group, for GetHistory (registry/history.h).
  HistoryOptions history;
  // How long a user whose last channel left a group is still listed there
  // (registry/presence.h); a lost edge's users leave at once.
  absl::Duration presence_debounce = absl::Seconds(3);
  // A lost edge's users leave after this (a stream cut and back at once, its
  // replay in, is no leave), and a crashed edge's within a second.
  absl::Duration lost_presence_grace = absl::Milliseconds(500);
  // User connections tracked (registry/users.h), across users.
  size_t max_user_connections = 1'000'000;
};

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
  // The event's offset in the group's history (0: history off).
  uint64_t offset = 0;
};

struct GroupInfo {
  std::string name;
  std::vector<MemberInfo> members;  // Sorted by channel name.
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
  // Signed-in users placed here with connections, and their connections.
  uint64_t users = 0;
  uint64_t user_connections = 0;
  std::array<uint64_t, kDropReasonCount> drops{};
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
  // `user`: who the channel belongs to, for presence (null: anonymous);
  // `watch`: the channel gets the group's presence events.
  absl::Status GroupAdd(absl::string_view group, absl::string_view channel,
                        const PresenceUser* user = nullptr, bool watch = false);
  // `leave_now`: the user's presence leave is due at once (see Presence::Leave).
  absl::Status GroupDiscard(absl::string_view group, absl::string_view channel,
                            bool leave_now = false);
  absl::StatusOr<SendReport> GroupSend(absl::string_view group, EventPtr event,
                                       const std::shared_ptr<QueueQuota>& quota = nullptr);
  void Flush();
  // The group's events after offset `since` if `epoch` is this process's and
  // none of them is gone (recovered), else its latest; at most `limit`.
  absl::StatusOr<HistoryPage> GetHistory(absl::string_view group, const HistoryQuery& query);
  // The group's signed-in users, and how many members have none.
  absl::StatusOr<PresenceSnapshot> GetPresence(absl::string_view group) const;
  const std::string& history_epoch() const { return history_.epoch(); }
  // The next queued event of `channel`. When there is none and `receiver` is
  // set, it is registered and the result is nullptr: the receiver then gets the
  // next event sent, unless CancelReceive removes it first.
  absl::StatusOr<EventPtr> Receive(absl::string_view channel,
                                   std::shared_ptr<Receiver> receiver = nullptr);
  // True if the receiver was still waiting (it will not be called).
  bool CancelReceive(absl::string_view channel, const Receiver* receiver);
  // `<prefix>.<process-random>!<random>`, valid and unused.
  absl::StatusOr<std::string> NewChannel(absl::string_view prefix);

  // --- Users placed on this shard (registry/users.h).
  // A connection of a signed-in user on edge `edge_id`, which must own its
  // channel; RESOURCE_EXHAUSTED when `cap` > 0 and the user has `cap` already.
  // Its `since` is the edge's time of opening, or InfiniteFuture for now.
  absl::Status ConnectUser(UserConnection connection, uint32_t cap, uint32_t* count = nullptr);
  // INVALID_ARGUMENT when `edge_id` does not own the channel.
  absl::Status DisconnectUser(absl::string_view user_id, absl::string_view channel,
                              absl::string_view edge_id);
  std::vector<UserConnection> GetUser(absl::string_view user_id) const;
  // Tells each edge holding a connection of the user to close it (those in
  // `close.group`, when set; the edges know their members) and, for all of
  // them, forgets the connections at once. Returns the connections (all) or
  // the edges (a group) that were told; an edge whose stream cannot take
  // it keeps its connections.
  uint32_t CloseUser(const UserClose& close);

  // --- Inspection.
  GroupPage ListGroups(absl::string_view name_prefix, size_t page_size,
                       absl::string_view page_token) const;
  absl::StatusOr<GroupInfo> GetGroup(absl::string_view name) const;
  StatsSnapshot Stats() const;

  // Drops expired events and memberships (lookups skip expired entries
  // anyway; this bounds the memory they hold), and announces the presence
  // leaves that are due.
  void Sweep();
  // Announces the presence leaves that are due (Sweep does too; this is for
  // a finer tick).
  void AnnouncePresence();
  // Drops counted outside the registry (e.g. events that expired on a stream).
  void CountDrop(DropReason reason, uint64_t n);

  const RegistryOptions& options() const { return options_; }

 private:
  absl::Status ValidateEvent(const EventPtr& event) const;
  // INVALID_ARGUMENT unless the attached edge `edge_id` owns `channel`.
  absl::Status CheckOwnConnection(absl::string_view channel, absl::string_view edge_id) const;
  // Removes the memberships of `prefix`'s channels; when `lost`, adds their
  // groups to the loss already marked for `edge_id` (UnsettledGroups::MarkLost
  // comes first, while the members are still visible).
  // `leave_after`: when its users' presence leaves are due (see Presence).
  void ForgetOwner(absl::string_view edge_id, absl::string_view prefix, bool lost,
                   absl::Duration leave_after);
  // Sends each change to the group's presence watchers.
  void Announce(const std::vector<PresenceChange>& changes);
  void CountUnsettled(bool unsettled) {
    if (unsettled) unsettled_group_sends_.fetch_add(1, std::memory_order_relaxed);
  }

  const RegistryOptions options_;
  const chat::Clock* const clock_;
  DropCounts drops_;
  EdgeDirectory edges_;
  GroupTable groups_;
  Mailboxes mailboxes_;
  UnsettledGroups unsettled_;
  History history_;
  Presence presence_;
  Users users_;
  // Held by a group_send from its offset to its last hand-off (by group hash).
  std::array<absl::Mutex, 64> send_order_;

  std::atomic<uint64_t> events_in_{0};
  std::atomic<uint64_t> events_out_{0};
  std::atomic<uint64_t> stream_deliveries_{0};
  std::atomic<uint64_t> unsettled_group_sends_{0};
  const std::string process_tag_;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_GROUP_REGISTRY_H_
