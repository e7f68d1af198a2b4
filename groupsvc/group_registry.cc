#include "groupsvc/group_registry.h"

#include <fnmatch.h>

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "shared/names.h"

namespace groupsvc {
namespace {

std::string RandomTag(size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  absl::BitGen gen;
  std::string tag(length, 'a');
  for (char& c : tag) c = kAlphabet[absl::Uniform<size_t>(gen, 0, sizeof(kAlphabet) - 1)];
  return tag;
}

// Compares secrets in time that depends on their lengths only.
bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

GroupRegistry::GroupRegistry(RegistryOptions options, const chat::Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      warmup_until_(clock->Now() + options_.warmup),
      warming_up_(options_.warmup > absl::ZeroDuration()),
      process_tag_(RandomTag(8)) {}

GroupRegistry::Shard& GroupRegistry::ShardFor(absl::string_view name) const {
  return shards_[absl::HashOf(name) % kShards];
}

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

std::shared_ptr<EdgeSink> GroupRegistry::FindEdge(absl::string_view prefix) const {
  if (prefix.empty()) return nullptr;
  absl::ReaderMutexLock lock(&edges_mu_);
  auto it = edges_by_prefix_.find(prefix);
  return it == edges_by_prefix_.end() ? nullptr : it->second.sink;
}

size_t GroupRegistry::CapacityFor(absl::string_view channel) const {
  if (options_.capacity_overrides.empty()) return options_.capacity;
  std::string name(channel);
  for (const auto& [pattern, capacity] : options_.capacity_overrides) {
    if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return capacity;
  }
  return options_.capacity;
}

// ------------------------------------------------------------------- Edges

absl::StatusOr<Attachment> GroupRegistry::AttachEdge(const AttachRequest& hello,
                                                     std::shared_ptr<EdgeSink> sink) {
  const std::string& edge_id = hello.edge_id;
  const std::string& prefix = hello.channel_prefix;
  if (absl::Status s = chat::ValidateGroupName(edge_id); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("edge_id follows the group name rules: ", s.message()));
  }
  if (absl::Status s = chat::ValidateChannelName(prefix); !s.ok()) return s;
  if (!absl::EndsWith(prefix, "!") || chat::ChannelOwnerPrefix(prefix) != prefix) {
    return absl::InvalidArgumentError(absl::StrCat(
        "channel_prefix must be a channel name ending in its only '!', like \"edge-1!\"; got \"",
        prefix, "\""));
  }
  if (hello.incarnation.size() < kMinIncarnationBytes ||
      hello.incarnation.size() > kMaxIncarnationBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hello.incarnation must be ", kMinIncarnationBytes, " to ", kMaxIncarnationBytes,
        " random bytes chosen once per edge process; got ", hello.incarnation.size()));
  }
  EdgeEntry replaced;
  Attachment attachment;
  {
    absl::MutexLock lock(&edges_mu_);
    auto held = edges_by_prefix_.find(prefix);
    if (held != edges_by_prefix_.end() && held->second.edge_id != edge_id) {
      return absl::AlreadyExistsError(absl::StrCat("channel prefix \"", prefix,
                                                   "\" is held by attached edge \"",
                                                   held->second.edge_id, "\""));
    }
    auto old = prefix_by_edge_.find(edge_id);
    std::string old_prefix;
    if (old != prefix_by_edge_.end()) {
      old_prefix = old->second;
      auto entry = edges_by_prefix_.find(old_prefix);
      if (!SameSecret(entry->second.incarnation, hello.incarnation)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "edge id \"", edge_id, "\" is attached by another process",
            entry->second.peer.empty() ? "" : absl::StrCat(" (from ", entry->second.peer, ")"),
            "; give each edge process its own --edge_id"));
      }
      replaced = std::move(entry->second);
      edges_by_prefix_.erase(entry);
      attachment.replaced_previous = true;
    }
    attachment.generation = next_generation_++;
    if (attachment.replaced_previous) {
      // The old stream's groups lack its members until this one's replay is in.
      MarkLost(edge_id, OwnerGroups(old_prefix), attachment.generation, clock_->Now());
    }
    edges_by_prefix_[prefix] =
        EdgeEntry{edge_id, hello.incarnation, hello.peer, std::move(sink), attachment.generation};
    prefix_by_edge_[edge_id] = prefix;
    if (attachment.replaced_previous) {
      // The new stream re-registers what it has; nothing of the old one lingers.
      absl::flat_hash_set<std::string> groups;
      RemoveOwnerMemberships(old_prefix, &groups);
      AddLostGroups(edge_id, std::move(groups));
    }
  }
  if (replaced.sink != nullptr) replaced.sink->Replaced();
  return attachment;
}

void GroupRegistry::DetachEdge(absl::string_view edge_id, uint64_t generation,
                               DetachReason reason) {
  std::string prefix;
  auto attached = [&]() ABSL_SHARED_LOCKS_REQUIRED(edges_mu_) {
    auto it = prefix_by_edge_.find(edge_id);
    return it != prefix_by_edge_.end() &&
           edges_by_prefix_.find(it->second)->second.generation == generation;
  };
  {
    absl::ReaderMutexLock lock(&edges_mu_);
    if (!attached()) return;
    prefix = prefix_by_edge_.find(edge_id)->second;
  }
  // Recorded before the edge and its memberships go (see MarkLost), and
  // outside edges_mu_, which every group_send takes to find edges.
  if (reason == DetachReason::kLost) {
    MarkLost(edge_id, OwnerGroups(prefix), generation + 1, clock_->Now());
  }
  {
    absl::MutexLock lock(&edges_mu_);
    // A newer stream may have replaced this one meanwhile; it took over then.
    if (!attached()) return;
    edges_by_prefix_.erase(prefix);
    prefix_by_edge_.erase(edge_id);
  }
  if (reason == DetachReason::kLost) {
    // Groups joined between OwnerGroups and here (unary GroupAdds) count too.
    absl::flat_hash_set<std::string> groups;
    RemoveOwnerMemberships(prefix, &groups);
    AddLostGroups(edge_id, std::move(groups));
  } else {
    RemoveOwnerMemberships(prefix);
  }
}

void GroupRegistry::RemoveOwnerMemberships(absl::string_view prefix,
                                           absl::flat_hash_set<std::string>* groups) {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.groups.begin(); it != shard.groups.end();) {
      Group& group = it->second;
      auto bucket = group.by_owner.find(prefix);
      if (bucket != group.by_owner.end()) {
        if (groups != nullptr) groups->insert(it->first);
        group.size -= bucket->second.size();
        group.by_owner.erase(bucket);
      }
      if (group.size == 0) {
        shard.groups.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

absl::flat_hash_set<std::string> GroupRegistry::OwnerGroups(absl::string_view prefix) const {
  absl::flat_hash_set<std::string> groups;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [name, group] : shard.groups) {
      if (group.by_owner.contains(prefix)) groups.insert(name);
    }
  }
  return groups;
}

// ------------------------------------------------------------ Unsettled groups

void GroupRegistry::MarkLost(absl::string_view edge_id, absl::flat_hash_set<std::string> groups,
                             uint64_t settled_by, absl::Time now) {
  if (groups.empty() || options_.unsettled_window <= absl::ZeroDuration()) return;
  const absl::Time until = now + options_.unsettled_window;
  absl::MutexLock lock(&unsettled_mu_);
  auto it = lost_edges_.find(edge_id);
  if (it == lost_edges_.end() && lost_edges_.size() >= options_.max_lost_edges) {
    // Too many to track one by one: everything is unsettled for the window.
    if (all_unsettled_until_ == absl::InfinitePast()) {
      unsettled_entries_.fetch_add(1, std::memory_order_release);
    }
    all_unsettled_until_ = std::max(all_unsettled_until_, until);
    return;
  }
  if (it == lost_edges_.end()) {
    it = lost_edges_.emplace(edge_id, LostEdge{}).first;
    unsettled_entries_.fetch_add(1, std::memory_order_release);
  }
  LostEdge& lost = it->second;
  if (lost.groups.empty()) {
    lost.groups = std::move(groups);
  } else {
    lost.groups.merge(groups);
  }
  lost.until = until;
  lost.settled_by = std::max(lost.settled_by, settled_by);
}

void GroupRegistry::AddLostGroups(absl::string_view edge_id,
                                  absl::flat_hash_set<std::string> groups) {
  if (groups.empty()) return;
  absl::MutexLock lock(&unsettled_mu_);
  auto it = lost_edges_.find(edge_id);
  if (it != lost_edges_.end()) it->second.groups.merge(groups);
}

void GroupRegistry::ReplayApplied(absl::string_view edge_id, uint64_t generation) {
  if (unsettled_entries_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&unsettled_mu_);
  auto it = lost_edges_.find(edge_id);
  if (it == lost_edges_.end() || it->second.settled_by > generation) return;
  lost_edges_.erase(it);
  unsettled_entries_.fetch_sub(1, std::memory_order_release);
}

bool GroupRegistry::Unsettled(absl::string_view group, absl::Time now) const {
  if (warming_up_.load(std::memory_order_relaxed)) {
    if (now < warmup_until_) return true;
    warming_up_.store(false, std::memory_order_relaxed);
  }
  if (unsettled_entries_.load(std::memory_order_acquire) == 0) return false;
  absl::ReaderMutexLock lock(&unsettled_mu_);
  if (now < all_unsettled_until_) return true;
  for (const auto& [edge_id, lost] : lost_edges_) {
    if (now < lost.until && lost.groups.contains(group)) return true;
  }
  return false;
}

void GroupRegistry::SweepLostEdges(absl::Time now) {
  if (unsettled_entries_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&unsettled_mu_);
  size_t erased = 0;
  for (auto it = lost_edges_.begin(); it != lost_edges_.end();) {
    if (it->second.until <= now) {
      lost_edges_.erase(it++);
      ++erased;
    } else {
      ++it;
    }
  }
  if (all_unsettled_until_ != absl::InfinitePast() && all_unsettled_until_ <= now) {
    all_unsettled_until_ = absl::InfinitePast();
    ++erased;
  }
  if (erased > 0) unsettled_entries_.fetch_sub(erased, std::memory_order_release);
}

// ------------------------------------------------------------- Channel layer

void GroupRegistry::Unqueued(const QueuedEvent& q) {
  const size_t bytes = q.event->ByteSize();
  queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  if (q.quota != nullptr) q.quota->Refund(bytes);
}

void GroupRegistry::DropExpired(ChannelQueue& queue, absl::Time now) {
  uint64_t dropped = 0;
  while (!queue.events.empty() && queue.events.front().expires <= now) {
    Unqueued(queue.events.front());
    queue.events.pop_front();
    ++dropped;
  }
  if (dropped > 0) {
    queued_events_.fetch_sub(dropped, std::memory_order_relaxed);
    CountDrop(DropReason::kExpired, dropped);
  }
}

absl::Status GroupRegistry::Enqueue(absl::string_view channel, const EventPtr& event,
                                    absl::Time now, const std::shared_ptr<QueueQuota>& quota) {
  std::shared_ptr<Receiver> waiting;
  {
    Shard& shard = ShardFor(channel);
    absl::MutexLock lock(&shard.mu);
    ChannelQueue& queue = shard.channels[channel];
    DropExpired(queue, now);
    if (!queue.receivers.empty()) {
      waiting = std::move(queue.receivers.front());
      queue.receivers.pop_front();
      if (queue.receivers.empty() && queue.events.empty()) shard.channels.erase(channel);
    } else {
      const size_t capacity = CapacityFor(channel);
      if (queue.events.size() >= capacity) {
        return absl::ResourceExhaustedError(absl::StrCat("channel full: \"", channel, "\" holds ",
                                                         capacity, " undelivered events"));
      }
      if (queued_bytes_.load(std::memory_order_relaxed) + event->ByteSize() >
          options_.max_queued_bytes) {
        if (queue.events.empty()) shard.channels.erase(channel);
        return absl::ResourceExhaustedError(absl::StrCat(
            "layer full: ", options_.max_queued_bytes, " bytes of undelivered events are queued"));
      }
      if (quota != nullptr && !quota->TryCharge(event->ByteSize())) {
        if (queue.events.empty()) shard.channels.erase(channel);
        return absl::ResourceExhaustedError(
            absl::StrCat("caller quota: ", quota->owner(), " has ", quota->bytes(),
                         " bytes of undelivered events queued, and may queue at most ",
                         quota->limit(), " (--caller_queued_bytes)"));
      }
      queue.events.push_back(QueuedEvent{event, now + options_.expiry, quota});
      queued_bytes_.fetch_add(event->ByteSize(), std::memory_order_relaxed);
      queued_events_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (waiting != nullptr) waiting->OnEvent(event);
  events_out_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status GroupRegistry::Send(absl::string_view channel, EventPtr event,
                                 const std::shared_ptr<QueueQuota>& quota) {
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  if (absl::Status s = ValidateEvent(event); !s.ok()) return s;
  events_in_.fetch_add(1, std::memory_order_relaxed);
  if (auto edge = FindEdge(chat::ChannelOwnerPrefix(channel)); edge != nullptr) {
    if (!edge->Deliver(event, {std::string(channel)}, "")) {
      CountDrop(DropReason::kEdgeQueueFull, 1);
      return absl::ResourceExhaustedError(
          absl::StrCat("channel full: the stream of the edge owning \"", channel, "\" is full"));
    }
    events_out_.fetch_add(1, std::memory_order_relaxed);
    stream_deliveries_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  absl::Status status = Enqueue(channel, event, clock_->Now(), quota);
  if (!status.ok()) CountDrop(DropReason::kChannelFull, 1);
  return status;
}

absl::Status GroupRegistry::GroupAdd(absl::string_view group, absl::string_view channel) {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  Shard& shard = ShardFor(group);
  absl::MutexLock lock(&shard.mu);
  Group& g = shard.groups[group];
  Bucket& bucket = g.by_owner[chat::ChannelOwnerPrefix(channel)];
  auto [it, inserted] = bucket.try_emplace(channel, Membership{now, now});
  if (inserted) {
    ++g.size;
  } else if (Lapsed(it->second, now)) {
    it->second = Membership{now, now};  // A lapsed membership is a new one.
  } else {
    it->second.renewed = now;
  }
  return absl::OkStatus();
}

absl::Status GroupRegistry::GroupDiscard(absl::string_view group, absl::string_view channel) {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  Shard& shard = ShardFor(group);
  absl::MutexLock lock(&shard.mu);
  auto g = shard.groups.find(group);
  if (g == shard.groups.end()) return absl::OkStatus();
  auto bucket = g->second.by_owner.find(chat::ChannelOwnerPrefix(channel));
  if (bucket == g->second.by_owner.end()) return absl::OkStatus();
  if (bucket->second.erase(channel) > 0) --g->second.size;
  if (bucket->second.empty()) g->second.by_owner.erase(bucket);
  if (g->second.size == 0) shard.groups.erase(g);
  return absl::OkStatus();
}

absl::StatusOr<SendReport> GroupRegistry::GroupSend(absl::string_view group, EventPtr event,
                                                    const std::shared_ptr<QueueQuota>& quota) {
  if (absl::Status s = chat::ValidateGroupName(group); !s.ok()) return s;
  if (absl::Status s = ValidateEvent(event); !s.ok()) return s;
  events_in_.fetch_add(1, std::memory_order_relaxed);
  const absl::Time now = clock_->Now();
  std::vector<std::pair<std::string, std::vector<std::string>>> targets;
  {
    Shard& shard = ShardFor(group);
    absl::MutexLock lock(&shard.mu);
    auto g = shard.groups.find(group);
    if (g == shard.groups.end()) {
      // No member visible; a lost edge's may still be there.
      SendReport report;
      report.unsettled = Unsettled(group, now);
      if (report.unsettled) unsettled_group_sends_.fetch_add(1, std::memory_order_relaxed);
      return report;
    }
    targets.reserve(g->second.by_owner.size());
    for (auto bucket = g->second.by_owner.begin(); bucket != g->second.by_owner.end();) {
      std::vector<std::string> channels;
      channels.reserve(bucket->second.size());
      for (auto m = bucket->second.begin(); m != bucket->second.end();) {
        if (Lapsed(m->second, now)) {
          bucket->second.erase(m++);
          --g->second.size;
        } else {
          channels.push_back(m->first);
          ++m;
        }
      }
      if (!channels.empty()) targets.emplace_back(bucket->first, std::move(channels));
      if (bucket->second.empty()) {
        g->second.by_owner.erase(bucket++);
      } else {
        ++bucket;
      }
    }
    if (g->second.size == 0) shard.groups.erase(g);
  }
  SendReport report;
  for (auto& [owner, channels] : targets) {
    const uint32_t n = channels.size();
    if (auto edge = FindEdge(owner); edge != nullptr) {
      if (edge->Deliver(event, std::move(channels), group)) {
        report.delivered += n;
        events_out_.fetch_add(n, std::memory_order_relaxed);
        stream_deliveries_.fetch_add(1, std::memory_order_relaxed);
      } else {
        report.dropped += n;
        CountDrop(DropReason::kEdgeQueueFull, n);
      }
      continue;
    }
    for (const std::string& channel : channels) {
      if (Enqueue(channel, event, now, quota).ok()) {
        ++report.delivered;
      } else {
        ++report.dropped;
        CountDrop(DropReason::kChannelFull, 1);
      }
    }
  }
  // Checked after the members were read: a loss recorded before its members
  // were removed is seen here (see MarkLost).
  report.unsettled = Unsettled(group, now);
  if (report.unsettled) unsettled_group_sends_.fetch_add(1, std::memory_order_relaxed);
  return report;
}

void GroupRegistry::Flush() {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    shard.groups.clear();
    for (auto it = shard.channels.begin(); it != shard.channels.end();) {
      ChannelQueue& queue = it->second;
      for (const QueuedEvent& q : queue.events) Unqueued(q);
      queued_events_.fetch_sub(queue.events.size(), std::memory_order_relaxed);
      queue.events.clear();
      if (queue.receivers.empty()) {
        shard.channels.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

absl::StatusOr<EventPtr> GroupRegistry::Receive(absl::string_view channel,
                                                std::shared_ptr<Receiver> receiver) {
  if (absl::Status s = chat::ValidateChannelName(channel); !s.ok()) return s;
  if (FindEdge(chat::ChannelOwnerPrefix(channel)) != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "channel \"", channel, "\" is owned by an attached edge; its events go to that edge"));
  }
  Shard& shard = ShardFor(channel);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.channels.find(channel);
  if (it != shard.channels.end()) {
    ChannelQueue& queue = it->second;
    DropExpired(queue, clock_->Now());
    if (!queue.events.empty()) {
      Unqueued(queue.events.front());
      EventPtr event = std::move(queue.events.front().event);
      queue.events.pop_front();
      queued_events_.fetch_sub(1, std::memory_order_relaxed);
      if (queue.events.empty() && queue.receivers.empty()) shard.channels.erase(it);
      return event;
    }
  }
  if (receiver == nullptr) {
    if (it != shard.channels.end() && it->second.receivers.empty()) shard.channels.erase(it);
    return EventPtr();
  }
  ChannelQueue& queue = shard.channels[channel];
  if (queue.receivers.size() >= options_.max_receivers_per_channel) {
    return absl::ResourceExhaustedError(absl::StrCat("channel \"", channel, "\" already has ",
                                                     options_.max_receivers_per_channel,
                                                     " waiting receivers"));
  }
  queue.receivers.push_back(std::move(receiver));
  return EventPtr();
}

bool GroupRegistry::CancelReceive(absl::string_view channel, const Receiver* receiver) {
  Shard& shard = ShardFor(channel);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.channels.find(channel);
  if (it == shard.channels.end()) return false;
  auto& receivers = it->second.receivers;
  auto r = std::find_if(receivers.begin(), receivers.end(),
                        [&](const auto& p) { return p.get() == receiver; });
  if (r == receivers.end()) return false;
  receivers.erase(r);
  if (receivers.empty() && it->second.events.empty()) shard.channels.erase(it);
  return true;
}

absl::StatusOr<std::string> GroupRegistry::NewChannel(absl::string_view prefix) {
  if (prefix.empty()) prefix = "specific";
  std::string name = absl::StrCat(prefix, ".", process_tag_, "!", RandomTag(12));
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
  const absl::Time now = clock_->Now();
  std::vector<GroupSummary> all;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [name, group] : shard.groups) {
      if (!absl::StartsWith(name, name_prefix) || name <= page_token) continue;
      size_t live = 0;
      for (const auto& [owner, bucket] : group.by_owner) {
        for (const auto& [channel, m] : bucket) live += Lapsed(m, now) ? 0 : 1;
      }
      if (live > 0) all.push_back(GroupSummary{name, live});
    }
  }
  std::sort(all.begin(), all.end(),
            [](const GroupSummary& a, const GroupSummary& b) { return a.name < b.name; });
  GroupPage page;
  if (all.size() > page_size) {
    all.resize(page_size);
    page.next_page_token = all.back().name;
  }
  page.groups = std::move(all);
  return page;
}

absl::StatusOr<GroupInfo> GroupRegistry::GetGroup(absl::string_view name) const {
  if (absl::Status s = chat::ValidateGroupName(name); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  GroupInfo info{std::string(name), {}};
  {
    const Shard& shard = ShardFor(name);
    absl::MutexLock lock(&shard.mu);
    auto g = shard.groups.find(name);
    if (g != shard.groups.end()) {
      for (const auto& [owner, bucket] : g->second.by_owner) {
        for (const auto& [channel, m] : bucket) {
          if (!Lapsed(m, now))
            info.members.push_back(MemberInfo{channel, owner, m.joined, m.renewed});
        }
      }
    }
  }
  if (info.members.empty()) {
    return absl::NotFoundError(absl::StrCat("group \"", name, "\" has no members"));
  }
  {
    absl::ReaderMutexLock lock(&edges_mu_);
    for (MemberInfo& m : info.members) {
      auto edge = m.edge_id.empty() ? edges_by_prefix_.end() : edges_by_prefix_.find(m.edge_id);
      m.edge_id = edge == edges_by_prefix_.end() ? "" : edge->second.edge_id;
    }
  }
  std::sort(info.members.begin(), info.members.end(),
            [](const MemberInfo& a, const MemberInfo& b) { return a.channel < b.channel; });
  return info;
}

StatsSnapshot GroupRegistry::Stats() const {
  StatsSnapshot s;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    s.groups += shard.groups.size();
    for (const auto& [name, group] : shard.groups) s.memberships += group.size;
    s.channels += shard.channels.size();
  }
  {
    absl::ReaderMutexLock lock(&edges_mu_);
    s.attached_edges = edges_by_prefix_.size();
  }
  s.queued_events = queued_events_.load(std::memory_order_relaxed);
  s.events_in = events_in_.load(std::memory_order_relaxed);
  s.events_out = events_out_.load(std::memory_order_relaxed);
  s.stream_deliveries = stream_deliveries_.load(std::memory_order_relaxed);
  s.unsettled_group_sends = unsettled_group_sends_.load(std::memory_order_relaxed);
  {
    absl::ReaderMutexLock lock(&unsettled_mu_);
    s.lost_edges = lost_edges_.size();
  }
  for (size_t i = 0; i < kDropReasonCount; ++i) s.drops[i] = drops_[i].load();
  return s;
}

void GroupRegistry::CountDrop(DropReason reason, uint64_t n) {
  drops_[static_cast<size_t>(reason)].fetch_add(n, std::memory_order_relaxed);
}

void GroupRegistry::Sweep() {
  const absl::Time now = clock_->Now();
  SweepLostEdges(now);
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto g = shard.groups.begin(); g != shard.groups.end();) {
      Group& group = g->second;
      for (auto b = group.by_owner.begin(); b != group.by_owner.end();) {
        const size_t before = b->second.size();
        absl::erase_if(b->second, [&](const auto& m) { return Lapsed(m.second, now); });
        group.size -= before - b->second.size();
        if (b->second.empty()) {
          group.by_owner.erase(b++);
        } else {
          ++b;
        }
      }
      if (group.size == 0) {
        shard.groups.erase(g++);
      } else {
        ++g;
      }
    }
    for (auto c = shard.channels.begin(); c != shard.channels.end();) {
      DropExpired(c->second, now);
      if (c->second.events.empty() && c->second.receivers.empty()) {
        shard.channels.erase(c++);
      } else {
        ++c;
      }
    }
  }
}

}  // namespace groupsvc
