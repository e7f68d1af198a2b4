#include "groupsvc/registry/group_registry.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "groupsvc/registry/event_json.h"
#include "shared/names.h"

namespace groupsvc {
namespace {

absl::Status ValidatePresenceUser(const PresenceUser& user) {
  if (user.id.size() > chat::kMaxUserField || user.name.size() > chat::kMaxUserField) {
    return absl::InvalidArgumentError(
        absl::StrCat("a user's id and name are at most ", chat::kMaxUserField, " bytes each"));
  }
  return absl::OkStatus();
}

MailboxLimits LimitsOf(const RegistryOptions& o) {
  return MailboxLimits{o.capacity, o.capacity_overrides, o.expiry, o.max_queued_bytes,
                       o.max_receivers_per_channel};
}

}  // namespace

GroupRegistry::GroupRegistry(RegistryOptions options, const chat::Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      groups_(options_.group_expiry),
      mailboxes_(LimitsOf(options_), &drops_),
      unsettled_(
          UnsettledOptions{options_.warmup, options_.unsettled_window, options_.max_lost_edges},
          clock->Now()),
      history_(options_.history, chat::RandomTag(8)),
      presence_(options_.presence_debounce),
      users_(options_.max_user_connections),
      process_tag_(chat::RandomTag(8)) {}

absl::Status GroupRegistry::ValidateEvent(const EventPtr& event) const {
  if (event == nullptr || event->type.empty()) {
    return absl::InvalidArgumentError("event must have a non-empty string \"type\"");
  }
  if (event->ByteSize() > options_.max_event_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("event of ", event->ByteSize(),
                                                   " bytes exceeds the limit of ",
                                                   options_.max_event_bytes, " bytes"));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------- Edges

absl::StatusOr<Attachment> GroupRegistry::AttachEdge(const AttachRequest& hello,
                                                     std::shared_ptr<EdgeSink> sink) {
  absl::StatusOr<EdgeDirectory::Admitted> admitted =
      edges_.Attach(hello, std::move(sink), [&](absl::string_view old_prefix, uint64_t generation) {
        // The old stream's groups lack its members until this one's replay is
        // in; the new stream re-registers what it has, nothing of the old lingers.
        unsettled_.MarkLost(hello.edge_id, groups_.OwnerGroups(old_prefix), generation,
                            clock_->Now());
        // The same process again: its users are back with its replay, so
        // their leaves wait (and nothing is announced under this lock).
        ForgetOwner(hello.edge_id, old_prefix, /*lost=*/true, options_.presence_debounce);
      });
  if (!admitted.ok()) return admitted.status();
  if (admitted->replaced != nullptr) admitted->replaced->Replaced();
  return admitted->attachment;
}

void GroupRegistry::DetachEdge(absl::string_view edge_id, uint64_t generation,
                               DetachReason reason) {
  std::optional<std::string> prefix = edges_.CurrentPrefix(edge_id, generation);
  if (!prefix.has_value()) return;
  const bool lost = reason == DetachReason::kLost;
  // Recorded before the edge and its memberships go, and outside the
  // directory's lock, which every group_send takes to find edges.
  if (lost)
    unsettled_.MarkLost(edge_id, groups_.OwnerGroups(*prefix), generation + 1, clock_->Now());
  // A newer stream may have replaced this one meanwhile; it took over then.
  if (!edges_.Remove(edge_id, generation)) return;
  // A lost edge's users leave soon (a crashed edge's pages are gone), unless
  // its stream is back meanwhile; a closed stream's may reconnect through
  // another edge within the debounce.
  ForgetOwner(edge_id, *prefix, lost,
              lost ? options_.lost_presence_grace : options_.presence_debounce);
}

void GroupRegistry::ForgetOwner(absl::string_view edge_id, absl::string_view prefix, bool lost,
                                absl::Duration leave_after) {
  absl::flat_hash_set<std::string> groups;
  groups_.RemoveOwner(prefix, &groups);
  // Its connections are gone with it (a crashed edge must not hold users at
  // their cap); a stream back replays those still open.
  users_.RemoveOwner(prefix);
  // Never announces: AttachEdge calls this under the directory's lock, which
  // Announce takes to find edges. Due leaves go out with the next tick.
  presence_.RemoveOwner(prefix, groups, leave_after, clock_->Now());
  // Groups joined since the loss was marked (unary GroupAdds) count too.
  if (lost) unsettled_.AddLostGroups(edge_id, std::move(groups));
}

void GroupRegistry::Announce(const std::vector<PresenceChange>& changes) {
  for (const PresenceChange& change : changes) {
    google::protobuf::Struct fields;
    auto& f = *fields.mutable_fields();
    f["type"].set_string_value(change.joined ? "presence.join" : "presence.leave");
    auto& user = *f["user"].mutable_struct_value()->mutable_fields();
    user["id"].set_string_value(change.user.id);
    user["name"].set_string_value(change.user.name);
    absl::StatusOr<EventPtr> event = EventFromStruct(fields);
    if (!event.ok()) continue;
    // Grouped by owner, as a group_send's members are: one delivery per edge.
    absl::flat_hash_map<std::string, std::vector<std::string>> by_owner;
    for (std::string& channel : presence_.Watchers(change.group)) {
      if (channel == change.channel) continue;
      by_owner[chat::ChannelOwnerPrefix(channel)].push_back(std::move(channel));
    }
    const absl::Time now = clock_->Now();
    for (auto& [owner, channels] : by_owner) {
      if (auto edge = edges_.Find(owner); edge != nullptr) {
        if (!edge->Deliver(*event, std::move(channels), change.group, 0, "")) {
          CountDrop(DropReason::kEdgeQueueFull, channels.size());
        }
        continue;
      }
      for (const std::string& channel : channels) {
        if (!mailboxes_.Put(channel, *event, now, nullptr).ok()) {
          CountDrop(DropReason::kChannelFull, 1);
        }
      }
    }
  }
}

void GroupRegistry::ReplayApplied(absl::string_view edge_id, uint64_t generation) {
  unsettled_.ReplayApplied(edge_id, generation);
}

// ------------------------------------------------------------- Channel layer

absl::Status GroupRegistry::Send(absl::string_view channel, EventPtr event,
                                 const std::shared_ptr<QueueQuota>& quota) {
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  if (absl::Status s = ValidateEvent(event); !s.ok()) return s;
  events_in_.fetch_add(1, std::memory_order_relaxed);
  if (auto edge = edges_.Find(chat::ChannelOwnerPrefix(channel)); edge != nullptr) {
    if (!edge->Deliver(event, {std::string(channel)}, "", 0, "")) {
      CountDrop(DropReason::kEdgeQueueFull, 1);
      return absl::ResourceExhaustedError(
          absl::StrCat("channel full: the stream of the edge owning \"", channel, "\" is full"));
    }
    events_out_.fetch_add(1, std::memory_order_relaxed);
    stream_deliveries_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  absl::Status status = mailboxes_.Put(channel, event, clock_->Now(), quota);
  if (status.ok()) {
    events_out_.fetch_add(1, std::memory_order_relaxed);
  } else {
    CountDrop(DropReason::kChannelFull, 1);
  }
  return status;
}

absl::Status GroupRegistry::GroupAdd(absl::string_view group, absl::string_view channel,
                                     const PresenceUser* user, bool watch) {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  if (user != nullptr && !user->id.empty()) {
    if (absl::Status s = ValidatePresenceUser(*user); !s.ok()) return s;
  }
  const absl::Time now = clock_->Now();
  groups_.Add(group, channel, now);
  if (auto change = presence_.Join(group, channel, user, watch, now)) Announce({*change});
  return absl::OkStatus();
}

absl::Status GroupRegistry::GroupDiscard(absl::string_view group, absl::string_view channel,
                                         bool leave_now) {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  groups_.Discard(group, channel);
  presence_.Leave(group, channel, clock_->Now(), leave_now);
  return absl::OkStatus();
}

// ------------------------------------------------------------------- Users

absl::Status GroupRegistry::ConnectUser(UserConnection connection, uint32_t cap, uint32_t* count) {
  if (connection.user_id.empty()) {
    return absl::InvalidArgumentError("a user connection needs the user's id");
  }
  if (absl::Status s = ValidatePresenceUser({connection.user_id, connection.name}); !s.ok()) {
    return s;
  }
  if (connection.room.size() > chat::kMaxUserField) {
    return absl::InvalidArgumentError(
        absl::StrCat("a connection's room is at most ", chat::kMaxUserField, " bytes"));
  }
  if (absl::Status s = CheckOwnConnection(connection.channel, connection.edge_id); !s.ok()) {
    return s;
  }
  // The edge's time of opening (kept across a replay), unless it is ahead of
  // ours (InfiniteFuture: the edge sent none).
  connection.since = std::min(connection.since, clock_->Now());
  return users_.Connect(std::move(connection), cap, count);
}

absl::Status GroupRegistry::CheckOwnConnection(absl::string_view channel,
                                               absl::string_view edge_id) const {
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  const std::string owner = edges_.EdgeIdOf(chat::ChannelOwnerPrefix(channel));
  if (owner.empty() || owner != edge_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("channel \"", channel, "\" is not owned by edge \"", edge_id,
                     "\"; an edge registers and ends only its own connections"));
  }
  return absl::OkStatus();
}

absl::Status GroupRegistry::DisconnectUser(absl::string_view user_id, absl::string_view channel,
                                           absl::string_view edge_id) {
  if (absl::Status s = CheckOwnConnection(channel, edge_id); !s.ok()) return s;
  users_.Disconnect(user_id, channel);
  return absl::OkStatus();
}

std::vector<UserConnection> GroupRegistry::GetUser(absl::string_view user_id) const {
  return users_.Find(user_id);
}

uint32_t GroupRegistry::CloseUser(const UserClose& close) {
  const bool all = close.group.empty();
  absl::flat_hash_map<std::string, std::vector<std::string>> by_edge;  // Channels.
  for (UserConnection& c : users_.Find(close.user_id)) {
    by_edge[c.edge_id].push_back(std::move(c.channel));
  }
  uint32_t told_edges = 0, told_connections = 0;
  for (const auto& [edge_id, channels] : by_edge) {
    auto sink = edges_.FindEdge(edge_id);
    // An edge that cannot take it now (its stream just ended) keeps them:
    // its next stream replays them, and they are not reported closed.
    if (sink == nullptr || !sink->CloseUser(close)) continue;
    ++told_edges;
    told_connections += channels.size();
    // All of them: forgotten now, so a GetUser or a new connection right
    // after sees the user gone (the edge's own disconnects find nothing).
    if (all) {
      for (const std::string& channel : channels) users_.Disconnect(close.user_id, channel);
    }
  }
  return all ? told_connections : told_edges;
}

absl::StatusOr<SendReport> GroupRegistry::GroupSend(absl::string_view group, EventPtr event,
                                                    const std::shared_ptr<QueueQuota>& quota) {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  if (absl::Status s = ValidateEvent(event); !s.ok()) return s;
  events_in_.fetch_add(1, std::memory_order_relaxed);
  const absl::Time now = clock_->Now();
  SendReport report;
  // A group's events are numbered and handed on in one step, so that every
  // edge (and page) sees a room's offsets in order.
  absl::MutexLock order(&send_order_[absl::HashOf(group) % send_order_.size()]);
  std::string epoch;  // The group's, when not the shard's.
  report.offset = history_.Append(group, event, now, &epoch);
  for (OwnerMembers& members : groups_.Members(group, now)) {
    const uint32_t n = members.channels.size();
    if (auto edge = edges_.Find(members.owner); edge != nullptr) {
      if (edge->Deliver(event, std::move(members.channels), group, report.offset, epoch)) {
        report.delivered += n;
        events_out_.fetch_add(n, std::memory_order_relaxed);
        stream_deliveries_.fetch_add(1, std::memory_order_relaxed);
      } else {
        report.dropped += n;
        CountDrop(DropReason::kEdgeQueueFull, n);
      }
      continue;
    }
    for (const std::string& channel : members.channels) {
      if (mailboxes_.Put(channel, event, now, quota).ok()) {
        ++report.delivered;
        events_out_.fetch_add(1, std::memory_order_relaxed);
      } else {
        ++report.dropped;
        CountDrop(DropReason::kChannelFull, 1);
      }
    }
  }
  // Checked after the members were read: a loss recorded before its members
  // were removed is seen here (see UnsettledGroups::MarkLost).
  report.unsettled = unsettled_.Unsettled(group, now);
  CountUnsettled(report.unsettled);
  return report;
}

void GroupRegistry::Flush() {
  groups_.Clear();
  mailboxes_.Clear();
  history_.Clear();
  presence_.Clear();
}

absl::StatusOr<HistoryPage> GroupRegistry::GetHistory(absl::string_view group,
                                                      const HistoryQuery& query) {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  return history_.Since(group, query, clock_->Now());
}

absl::StatusOr<PresenceSnapshot> GroupRegistry::GetPresence(absl::string_view group) const {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  PresenceSnapshot snapshot = presence_.Get(group);
  uint32_t named = 0;
  for (const PresenceMember& m : snapshot.members) named += m.connections;
  const size_t size = groups_.Get(group, clock_->Now()).size();
  snapshot.anonymous_connections = size > named ? static_cast<uint32_t>(size - named) : 0;
  return snapshot;
}

absl::StatusOr<EventPtr> GroupRegistry::Receive(absl::string_view channel,
                                                std::shared_ptr<Receiver> receiver) {
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  if (edges_.Find(chat::ChannelOwnerPrefix(channel)) != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "channel \"", channel, "\" is owned by an attached edge; its events go to that edge"));
  }
  return mailboxes_.Take(channel, clock_->Now(), std::move(receiver));
}

bool GroupRegistry::CancelReceive(absl::string_view channel, const Receiver* receiver) {
  return mailboxes_.Cancel(channel, receiver);
}

absl::StatusOr<std::string> GroupRegistry::NewChannel(absl::string_view prefix) {
  if (prefix.empty()) prefix = "specific";
  std::string name = absl::StrCat(prefix, ".", process_tag_, "!", chat::RandomTag(12));
  if (absl::Status s = chat::ValidateChannelName(name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prefix must be letters, digits, '-', '_' or '.' and leave room for a 22-character "
        "suffix; ",
        s.message()));
  }
  return name;
}

// ---------------------------------------------------------------- Inspection

GroupPage GroupRegistry::ListGroups(absl::string_view name_prefix, size_t page_size,
                                    absl::string_view page_token) const {
  return groups_.List(name_prefix, page_size, page_token, clock_->Now());
}

absl::StatusOr<GroupInfo> GroupRegistry::GetGroup(absl::string_view name) const {
  if (absl::Status s = chat::ValidateGroupName(name); !s.ok()) return s;
  GroupInfo info{std::string(name), groups_.Get(name, clock_->Now())};
  if (info.members.empty()) {
    return absl::NotFoundError(absl::StrCat("group \"", name, "\" has no members"));
  }
  edges_.NameOwners(info.members);
  return info;
}

StatsSnapshot GroupRegistry::Stats() const {
  StatsSnapshot s;
  std::tie(s.groups, s.memberships) = groups_.Counts();
  s.channels = mailboxes_.channels();
  s.attached_edges = edges_.size();
  s.queued_events = mailboxes_.queued_events();
  s.events_in = events_in_.load(std::memory_order_relaxed);
  s.events_out = events_out_.load(std::memory_order_relaxed);
  s.stream_deliveries = stream_deliveries_.load(std::memory_order_relaxed);
  s.unsettled_group_sends = unsettled_group_sends_.load(std::memory_order_relaxed);
  s.lost_edges = unsettled_.lost_edges();
  s.users = users_.users();
  s.user_connections = users_.connections();
  for (size_t i = 0; i < kDropReasonCount; ++i) s.drops[i] = drops_.Get(i);
  return s;
}

void GroupRegistry::CountDrop(DropReason reason, uint64_t n) { drops_.Add(reason, n); }

void GroupRegistry::Sweep() {
  const absl::Time now = clock_->Now();
  unsettled_.Sweep(now);
  std::vector<std::pair<std::string, std::string>> lapsed;
  groups_.Sweep(now, &lapsed);
  for (const auto& [group, channel] : lapsed) presence_.Leave(group, channel, now);
  mailboxes_.Sweep(now);
  history_.Sweep(now);
  Announce(presence_.Due(now));
}

void GroupRegistry::AnnouncePresence() { Announce(presence_.Due(clock_->Now())); }

}  // namespace groupsvc
