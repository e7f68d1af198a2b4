#include "edge/link/grpc_layer.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shared/log.h"
#include "shared/names.h"

namespace edge {

namespace v1 = ::groupsvc::v1;

namespace {

void SetWireEvent(const LayerEvent& event, v1::WireEvent* wire) {
  wire->set_type(event.type());
  wire->set_json(event.json());
}

// A group_add (or group_discard) of `channel` to `group`; a group_add with
// the channel's user (see Layer::SetUser).
v1::Command Membership(bool add, const std::string& group, const std::string& channel,
                       const ChannelUser* user) {
  v1::Command c;
  if (add) {
    if (user != nullptr) {
      if (!user->id.empty()) {
        c.mutable_group_add()->mutable_user()->set_id(user->id);
        c.mutable_group_add()->mutable_user()->set_name(user->name);
      }
      c.mutable_group_add()->set_watch_presence(user->watch_presence);
    }
    c.mutable_group_add()->set_group(group);
    c.mutable_group_add()->set_channel(channel);
  } else {
    c.mutable_group_discard()->set_group(group);
    c.mutable_group_discard()->set_channel(channel);
  }
  return c;
}

// A user_connect (with `cap`) or user_disconnect of `channel`.
v1::Command UserCommand(bool connect, const std::string& channel, const UserConnection& user,
                        uint32_t cap) {
  v1::Command c;
  if (connect) {
    v1::UserConnectRequest* r = c.mutable_user_connect();
    r->mutable_user()->set_id(user.id);
    r->mutable_user()->set_name(user.name);
    r->set_channel(channel);
    r->set_room(user.room);
    r->set_max_connections(cap);
    if (user.since != absl::InfiniteFuture()) {
      *r->mutable_since() =
          google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(user.since));
    }
  } else {
    c.mutable_user_disconnect()->set_user_id(user.id);
    c.mutable_user_disconnect()->set_channel(channel);
  }
  return c;
}

// 16 random bytes, once per process: see Hello.incarnation.
std::string RandomIncarnation() {
  absl::BitGen gen;
  std::string bytes(16, '\0');
  for (char& c : bytes) c = static_cast<char>(absl::Uniform<unsigned>(gen, 0, 256));
  return bytes;
}

}  // namespace

GrpcLayer::GrpcLayer(GrpcLayerOptions options)
    : options_(std::move(options)),
      loops_(options_.loops ? options_.loops : std::make_shared<InlineLoops>()),
      // The client part is what groupsvc knows this process by
      // (chat::ChannelOwnerPrefix), so it must not collide with another's.
      table_(absl::StrCat(options_.edge_id, ".", chat::RandomTag(12), "!"), loops_),
      context_{.cq = &cq_,
               .loops = loops_,
               .table = &table_,
               .edge_id = options_.edge_id,
               .incarnation = RandomIncarnation(),
               .max_pending = options_.max_pending,
               .max_batch_bytes = options_.max_batch_bytes},
      setup_(MakeChannelSetup(options_.tls, options_.min_backoff, options_.max_backoff)) {
  const auto shards = static_cast<uint32_t>(options_.targets.size());
  const Backoff backoff{options_.min_backoff, options_.max_backoff, options_.refused_backoff};
  for (const std::string& target : options_.targets) {
    links_.push_back(std::make_unique<ShardLink>(
        context_, static_cast<ShardLink::Host*>(this), static_cast<uint32_t>(links_.size()), shards,
        target, setup_.credentials, setup_.args, backoff, !options_.tls.ca_file.empty()));
  }
}

GrpcLayer::~GrpcLayer() { Stop(); }

void GrpcLayer::Start() {
  absl::MutexLock lock(&mu_);
  if (phase_ != Phase::kIdle) return;
  phase_ = Phase::kRunning;
  poller_ = std::thread([this] { Poll(); });
  reconnector_ = std::thread([this] { ReconnectLoop(); });
}

void GrpcLayer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (phase_ == Phase::kStopping) return;
    phase_ = Phase::kStopping;
  }
  for (auto& link : links_) link->Cancel();
  if (reconnector_.joinable()) reconnector_.join();
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  for (auto& link : links_) link->AwaitGone(deadline);
  // Next returns every operation still pending, then false.
  cq_.Shutdown();
  if (poller_.joinable()) {
    poller_.join();
  } else {
    Poll();  // Never started: drains the queue's shutdown.
  }
}

void GrpcLayer::Drain(absl::Time deadline) {
  for (auto& link : links_) link->Drain(deadline);
}

void GrpcLayer::Poll() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) static_cast<AttachCall::Op*>(tag)->Complete(ok);
}

void GrpcLayer::OnLinkDown() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void GrpcLayer::ReconnectLoop() {
  absl::MutexLock lock(&mu_);
  while (phase_ == Phase::kRunning) {
    wake_ = false;
    mu_.Unlock();
    const absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    for (auto& link : links_) next = std::min(next, link->Tick(now));
    mu_.Lock();
    // Wake at the next attempt, or when a call ends (which sets wake_).
    auto due = [this]()
                   ABSL_SHARED_LOCKS_REQUIRED(mu_) { return phase_ != Phase::kRunning || wake_; };
    mu_.AwaitWithDeadline(absl::Condition(&due), next);
  }
}

bool GrpcLayer::ready() const {
  for (const auto& link : links_) {
    if (link->ready()) return true;
  }
  return false;
}

uint64_t GrpcLayer::connects() const {
  uint64_t n = 0;
  for (const auto& link : links_) n += link->connects();
  return n;
}

std::vector<LinkState> GrpcLayer::links() const {
  std::vector<LinkState> states;
  for (const auto& link : links_) states.push_back(LinkState{link->target(), link->ready()});
  return states;
}

chat::Owners GrpcLayer::GroupOwners(const std::string& group, uint32_t bridge) const {
  return chat::GroupOwners(group, static_cast<uint32_t>(links_.size()), bridge,
                           [this](uint32_t shard) { return links_[shard]->bridging(); });
}

chat::Owners GrpcLayer::ChannelOwners(const std::string& channel) const {
  return chat::ChannelOwners(channel, static_cast<uint32_t>(links_.size()), bridge_.load(),
                             [this](uint32_t shard) { return links_[shard]->bridging(); });
}

std::vector<v1::Command> GrpcLayer::Replay(uint32_t index) const {
  std::vector<v1::Command> mine;
  const uint32_t bridge = bridge_.load();
  for (const auto& [group, channel] : table_.AllMemberships()) {
    if (GroupOwners(group, bridge).has(index)) mine.push_back(Join(group, channel));
  }
  // The connections of the users placed there (with no cap: they are open).
  for (const auto& [channel, user] : table_.Connections()) {
    if (UserOwner(user.id) == index) mine.push_back(UserCommand(true, channel, user, 0));
  }
  return mine;
}

void GrpcLayer::OnBridgeSeen() {
  const auto shards = static_cast<uint32_t>(links_.size());
  uint32_t next = 0;
  for (const auto& link : links_) {
    const int b = link->bridge_seen();
    // A bridge to our own count asks nothing of us: we place as usual.
    if (b > 0 && static_cast<uint32_t>(b) < shards) next = std::max(next, static_cast<uint32_t>(b));
  }
  const uint32_t previous = bridge_.exchange(next);
  if (previous == next) return;
  chat::LogEvent("layer_bridge", {{"from_shards", absl::StrCat(previous)},
                                  {"to_shards", absl::StrCat(next)},
                                  {"shards", absl::StrCat(shards)}});
  // Runs on the poller only (from Welcomes), so one at a time. A membership
  // that changes meanwhile is placed by the new count (read after it is set)
  // or re-placed here: either way it ends up where it belongs.
  for (const auto& [group, channel] : table_.AllMemberships()) {
    const chat::Owners before = GroupOwners(group, previous);
    const chat::Owners after = GroupOwners(group, next);
    for (int i = 0; i < after.count(); ++i) {
      if (before.has(after.member(i))) continue;
      links_[after.member(i)]->Submit(Join(group, channel), nullptr, /*require_ready=*/false);
    }
    for (int i = 0; i < before.count(); ++i) {
      if (after.has(before.member(i))) continue;
      links_[before.member(i)]->Submit(Membership(false, group, channel, nullptr), nullptr,
                                       /*require_ready=*/false);
    }
  }
}

v1::Command GrpcLayer::Join(const std::string& group, const std::string& channel) const {
  const std::optional<ChannelUser> user = table_.User(channel);
  return Membership(true, group, channel, user.has_value() ? &*user : nullptr);
}

void GrpcLayer::SetUser(const std::string& channel, ChannelUser user) {
  table_.SetUser(channel, std::move(user));
}

void GrpcLayer::History(const HistoryQuery& query, HistoryCallback done) {
  v1::Command c;
  v1::GetHistoryRequest* request = c.mutable_history();
  request->set_group(query.group);
  request->set_since_offset(query.since);
  request->set_epoch(query.epoch);
  request->set_page_size(query.limit);
  request->set_latest(query.latest);
  request->set_max_bytes(query.max_bytes);
  // Where the group's events are numbered: where its sends go.
  links_[GroupOwners(query.group, bridge_.load()).send]->Query(
      std::move(c), [done = std::move(done)](absl::Status s, const v1::Ack* ack) {
        if (!s.ok()) return done(s);
        const v1::HistoryReply& reply = ack->history();
        HistoryAnswer answer{reply.epoch(), reply.recovered(), reply.latest_offset(), {}};
        answer.events.reserve(reply.events_size());
        for (const v1::Delivery& d : reply.events()) {
          answer.events.push_back(
              LayerEvent::FromWire(d.event().type(), d.event().json(), d.offset(), reply.epoch()));
        }
        done(std::move(answer));
      });
}

void GrpcLayer::Presence(const std::string& group, PresenceCallback done) {
  v1::Command c;
  c.mutable_presence()->set_group(group);
  links_[GroupOwners(group, bridge_.load()).send]->Query(
      std::move(c), [done = std::move(done)](absl::Status s, const v1::Ack* ack) {
        if (!s.ok()) return done(s);
        std::vector<PresenceEntry> members;
        for (const v1::PresenceMember& m : ack->presence().members()) {
          members.push_back(PresenceEntry{m.id(), m.name()});
        }
        done(std::move(members));
      });
}

std::string GrpcLayer::Register(std::weak_ptr<ChannelSink> sink, size_t loop) {
  return table_.Add(std::move(sink), loop);
}

void GrpcLayer::Unregister(const std::string& channel) {
  std::optional<UserConnection> user = table_.Remove(channel);
  if (!user.has_value()) return;
  // (With the link down, the next stream's replay leaves it out instead.)
  links_[UserOwner(user->id)]->Submit(UserCommand(false, channel, *user, 0), nullptr,
                                      /*require_ready=*/false);
}

void GrpcLayer::ConnectUser(const std::string& channel, UserConnection user, uint32_t cap,
                            DoneCallback done) {
  user.since = absl::Now();  // Kept in the table, so that a replay says it again.
  v1::Command c = UserCommand(true, channel, user, cap);
  ShardLink& link = *links_[UserOwner(user.id)];
  // In the table first: a stream that starts after this replays it.
  if (!table_.SetConnection(channel, std::move(user))) {
    if (done) done(absl::FailedPreconditionError("the channel is gone"));
    return;
  }
  if (!link.ready()) {
    // The shard is away: counted (with no cap) when the stream waiting for
    // it connects, whose replay may predate this; the caller goes ahead.
    c.mutable_user_connect()->set_max_connections(0);
    link.Submit(std::move(c), nullptr, /*require_ready=*/false);
    if (done) done(absl::UnavailableError("the user's groupsvc shard is unreachable"));
    return;
  }
  link.Query(std::move(c), [done = std::move(done)](absl::Status s, const v1::Ack*) {
    if (done) done(s);
  });
}

uint32_t GrpcLayer::UserOwner(const std::string& user_id) const {
  return chat::UserShard(user_id, static_cast<uint32_t>(links_.size()));
}

void GrpcLayer::GroupAdd(const std::string& group, const std::string& channel, DoneCallback done) {
  table_.Join(group, channel);
  const chat::Owners owners = GroupOwners(group, bridge_.load());
  for (int i = 0; i < owners.count(); ++i) {
    // Our own placement's answer is the consumer's. The bridged owner's is
    // best effort: a shard that does not bridge (yet, or any more) refuses
    // it, and UpdateBridge places it again when that shard's Welcome changes.
    DoneCallback answer = nullptr;
    if (i == 0) {
      answer = [done](absl::Status s) {
        // Either way the membership is replayed by the shard's next stream.
        if (done) done(absl::IsUnavailable(s) || absl::IsUnknown(s) ? absl::OkStatus() : s);
      };
    }
    links_[owners.member(i)]->Submit(Join(group, channel), std::move(answer),
                                     /*require_ready=*/false);
  }
}

void GrpcLayer::GroupDiscard(const std::string& group, const std::string& channel) {
  if (!table_.Leave(group, channel)) return;
  const chat::Owners owners = GroupOwners(group, bridge_.load());
  // An operator closed it: its user's presence leaves at once.
  const bool leave_now = table_.ClosedByOperator(channel);
  for (int i = 0; i < owners.count(); ++i) {
    v1::Command c = Membership(false, group, channel, nullptr);
    c.mutable_group_discard()->set_leave_now(leave_now);
    links_[owners.member(i)]->Submit(std::move(c), nullptr, /*require_ready=*/false);
  }
}

void GrpcLayer::GroupSend(const std::string& group, LayerEventPtr event, DoneCallback done) {
  v1::Command c;
  c.mutable_group_send()->set_group(group);
  SetWireEvent(*event, c.mutable_group_send()->mutable_event());
  links_[GroupOwners(group, bridge_.load()).send]->Submit(std::move(c), std::move(done),
                                                          /*require_ready=*/true);
}

void GrpcLayer::Send(const std::string& channel, LayerEventPtr event, DoneCallback done) {
  v1::Command c;
  c.mutable_send()->set_channel(channel);
  SetWireEvent(*event, c.mutable_send()->mutable_event());
  links_[ChannelOwners(channel).send]->Submit(std::move(c), std::move(done),
                                              /*require_ready=*/true);
}

}  // namespace edge
