#include "edge/channels/grpc_layer.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shared/grpc_status.h"
#include "shared/log.h"
#include "shared/placement.h"

namespace edge {

namespace v1 = ::groupsvc::v1;

namespace {

std::string RandomPrefixTag() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  absl::BitGen gen;
  // The channel names' client part: what groupsvc knows this process by
  // (chat::ChannelOwnerPrefix), so it must not collide with another's.
  std::string tag(12, 'a');
  for (char& c : tag) c = kAlphabet[absl::Uniform<size_t>(gen, 0, sizeof(kAlphabet) - 1)];
  return tag;
}

void SetWireEvent(const LayerEvent& event, v1::WireEvent* wire) {
  wire->set_type(event.type());
  wire->set_json(event.json());
}

absl::Status AckStatus(const v1::Ack& ack) {
  if (ack.code() != 0)
    return absl::Status(static_cast<absl::StatusCode>(ack.code()), ack.message());
  if (ack.unsettled()) {
    return absl::UnknownError(
        "groupsvc cannot see every member of the room right now (it restarted, or an edge was "
        "lost, moments ago), so it may not have reached everyone");
  }
  return absl::OkStatus();
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

// What waits for an ack: a command's outcome (`done`), or a query's answer.
using AckCallback = std::function<void(absl::Status, const v1::Ack*)>;
struct Pending {
  DoneCallback done;
  AckCallback answer;
  explicit operator bool() const { return done || answer; }
  void Resolve(const absl::Status& status, const v1::Ack* ack) {
    if (answer) {
      answer(status, ack);
    } else if (done) {
      done(status);
    }
  }
};

}  // namespace

// One shard: its channel, its current stream and its reconnect state.
class GrpcLayer::Link {
 public:
  Link(GrpcLayer* layer, uint32_t index, std::string target,
       const std::shared_ptr<grpc::ChannelCredentials>& credentials,
       const grpc::ChannelArguments& args)
      : layer_(layer),
        index_(index),
        target_(std::move(target)),
        channel_(grpc::CreateCustomChannel(target_, credentials, args)),
        stub_(v1::ChannelLayer::NewStub(channel_)) {}

  // Starts a stream if none is open and the backoff has passed; logs a
  // handshake that keeps failing. Returns when to look again.
  absl::Time Tick(absl::Time now);
  // Queues on the current stream; fails `done` with UNAVAILABLE if there is none.
  void Submit(v1::Command command, DoneCallback done, bool require_ready) {
    Submit(std::move(command), Pending{std::move(done), nullptr}, require_ready);
  }
  // A history or presence query: `answer` gets the ack (UNAVAILABLE and no
  // ack while the shard is down or if the stream ends first).
  void Query(v1::Command command, AckCallback answer) {
    Submit(std::move(command), Pending{nullptr, std::move(answer)}, /*require_ready=*/true);
  }
  void Submit(v1::Command command, Pending pending, bool require_ready);
  void Cancel();
  // Waits (bounded) for the current stream's status, which touches this link.
  void AwaitGone(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto gone = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return call_ == nullptr; };
    mu_.AwaitWithDeadline(absl::Condition(&gone), deadline);
  }

  bool ready() const { return ready_.load(); }
  // The bridge count of this shard's last Welcome; -1 before the first.
  int bridge_seen() const { return bridge_seen_.load(); }
  uint64_t connects() const { return connects_.load(); }
  const std::string& target() const { return target_; }

 private:
  friend class AttachCall;

  static absl::Status Unavailable() {
    return absl::UnavailableError("the chat service is unavailable");
  }
  // The memberships of the groups placed on this shard, and the connections
  // of the users placed there (with no cap: they are open already).
  std::vector<v1::Command> Replay() const;
  void OnWelcome(const v1::Welcome& welcome);
  void OnDraining();
  void OnCallEnded(AttachCall* call, const grpc::Status& status);
  void ScheduleRetryLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs layer_connect_failing once when the stream has waited a while for a
  // channel whose connection attempts fail.
  void CheckConnectingLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::pair<std::string, std::string>> Fields(
      std::vector<std::pair<std::string, std::string>> more) const;

  GrpcLayer* const layer_;
  const uint32_t index_;
  const std::string target_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::ChannelLayer::Stub> stub_;
  std::atomic<bool> ready_{false};
  std::atomic<int> bridge_seen_{-1};
  std::atomic<uint64_t> connects_{0};
  absl::Mutex mu_;
  std::shared_ptr<AttachCall> call_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Since when the current stream has waited for a connection; and whether
  // the failing handshakes were logged for this outage.
  absl::Time waiting_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool connect_failure_logged_ ABSL_GUARDED_BY(mu_) = false;
  // Set by Cancel: no stream starts any more.
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// One Attach stream, on the async API: its operations complete on the layer's
// completion queue, which one thread polls (Poll). Writes are serialized
// through `queue_` with one write in flight; acks resolve `awaiting_`. The
// call owns itself (self_) until every operation it started has completed
// and its status is in: only then is it handed back to its link.
class GrpcLayer::AttachCall {
 public:
  AttachCall(Link* link, std::vector<v1::Command> replay) : link_(link), layer_(link->layer_) {
    v1::EdgeMessage first;
    first.mutable_hello()->set_edge_id(layer_->options_.edge_id);
    first.mutable_hello()->set_channel_prefix(layer_->table_.prefix());
    first.mutable_hello()->set_incarnation(layer_->incarnation_);
    for (v1::Command& command : replay) {
      v1::Command* c = first.add_commands();
      *c = std::move(command);
      c->set_request_id(next_id_++);
    }
    batch_ = std::move(first);
    // The hello goes first: nothing submitted before the call has started
    // (the link publishes the call before starting it) is written ahead of it.
    writing_ = true;
  }

  void Start(std::shared_ptr<AttachCall> self) {
    self_ = std::move(self);
    // Waits for groupsvc to be reachable instead of failing at once, so the
    // stream starts as soon as the channel connects (see the backoff).
    context_.set_wait_for_ready(true);
    {
      absl::MutexLock lock(&mu_);
      ops_ = 1;
    }
    stream_ = link_->stub_->PrepareAsyncAttach(&context_, &layer_->cq_);
    stream_->StartCall(&start_);
  }

  enum class Queued { kYes, kEnded, kFull };

  // `pending` is kept only when kYes.
  Queued Submit(v1::Command command, Pending pending, const std::shared_ptr<AttachCall>& self) {
    const size_t loop = layer_->loops_->current();
    const bool defer = loop != EventLoops::kNone;
    bool schedule = false;
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return Queued::kEnded;
      if (queue_.size() + awaiting_.size() >= layer_->options_.max_pending) return Queued::kFull;
      command.set_request_id(next_id_++);
      if (pending) awaiting_.emplace(command.request_id(), std::move(pending));
      queue_.push_back(std::move(command));
      schedule = defer && !writing_ && !pump_scheduled_;
      if (schedule) pump_scheduled_ = true;
    }
    if (!defer) {
      Pump();
    } else if (schedule) {
      layer_->loops_->Post(loop, [weak = std::weak_ptr<AttachCall>(self)] {
        if (auto call = weak.lock()) {
          {
            absl::MutexLock lock(&call->mu_);
            call->pump_scheduled_ = false;
          }
          call->Pump();
        }
      });
    }
    return Queued::kYes;
  }

  void Cancel() { context_.TryCancel(); }

  // A tag on the completion queue: which operation of which call completed.
  struct Tag {
    enum Kind { kStart, kRead, kWrite, kFinish };
    AttachCall* call;
    Kind kind;
    void Done(bool ok) { call->OnCompleted(kind, ok); }
  };

 private:
  void Pump() {
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || ended_ || queue_.empty()) return;
      batch_.Clear();
      size_t bytes = 0;
      while (!queue_.empty() && bytes < layer_->options_.max_batch_bytes) {
        bytes += queue_.front().ByteSizeLong();
        *batch_.add_commands() = std::move(queue_.front());
        queue_.pop_front();
      }
      writing_ = true;
      ++ops_;
    }
    stream_->Write(batch_, &write_);
  }

  // On the completion queue's thread only.
  void OnCompleted(Tag::Kind kind, bool ok) {
    switch (kind) {
      case Tag::kStart:
        if (ok) {
          {
            absl::MutexLock lock(&mu_);
            ops_ += 2;
          }
          stream_->Read(&incoming_, &read_);
          stream_->Write(batch_, &write_);
        } else {
          {
            absl::MutexLock lock(&mu_);
            writing_ = false;  // The hello was never written.
          }
          EndCall();
        }
        break;
      case Tag::kRead:
        if (ok) {
          OnRead();
          {
            absl::MutexLock lock(&mu_);
            ++ops_;
          }
          stream_->Read(&incoming_, &read_);
        } else {
          EndCall();
        }
        break;
      case Tag::kWrite: {
        bool finish = false;
        {
          absl::MutexLock lock(&mu_);
          writing_ = false;
          if (!ok) ended_ = true;
          finish = std::exchange(finish_after_write_, false);
        }
        if (finish) {
          stream_->Finish(&status_, &finish_);
        } else if (ok) {
          Pump();
        }
        break;
      }
      case Tag::kFinish:
        link_->OnCallEnded(this, status_);
        break;
    }
    OperationDone();
  }

  void OnRead() {
    if (incoming_.has_welcome()) {
      epoch_ = incoming_.welcome().history_epoch();
      link_->OnWelcome(incoming_.welcome());
    }
    if (incoming_.has_draining()) link_->OnDraining();
    for (const v1::CloseConnections& close : incoming_.closes()) {
      const uint16_t code =
          static_cast<uint16_t>(close.code() >= 4000 && close.code() <= 4999 ? close.code() : 4010);
      const size_t n =
          layer_->table_.CloseUser(close.user_id(), close.group(), code, close.reason());
      chat::LogEvent("user_closed", {{"user", close.user_id()},
                                     {"group", close.group()},
                                     {"code", absl::StrCat(code)},
                                     {"connections", absl::StrCat(n)}});
    }
    for (const v1::Ack& ack : incoming_.acks()) {
      Pending pending;
      {
        absl::MutexLock lock(&mu_);
        auto it = awaiting_.find(ack.request_id());
        if (it != awaiting_.end()) {
          pending = std::move(it->second);
          awaiting_.erase(it);
        }
      }
      pending.Resolve(AckStatus(ack), &ack);
    }
    if (incoming_.deliveries_size() > 0) {
      ChannelTable::Handoff handoff(layer_->table_);
      for (const v1::Delivery& d : incoming_.deliveries()) {
        LayerEventPtr event = LayerEvent::FromWire(d.event().type(), d.event().json(), d.offset(),
                                                   d.offset() == 0     ? std::string()
                                                   : d.epoch().empty() ? epoch_
                                                                       : d.epoch());
        layer_->table_.Deliver(d.channels(), event, handoff);
      }
    }
  }

  // The read side is over: nothing more will be acknowledged. The status is
  // asked for once no write is in flight (Finish, then, is the only operation).
  void EndCall() {
    absl::flat_hash_map<uint64_t, Pending> awaiting;
    absl::flat_hash_set<uint64_t> unsent;
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      awaiting.swap(awaiting_);
      for (const v1::Command& c : queue_) unsent.insert(c.request_id());
      queue_.clear();
      ++ops_;
      finish_now = !writing_;
      finish_after_write_ = writing_;
    }
    // Those never written are unavailable; those written may have been
    // carried out by groupsvc, so their outcome is unknown.
    for (auto& [id, pending] : awaiting) {
      if (unsent.contains(id) || pending.answer) {
        pending.Resolve(absl::UnavailableError("the chat service is unavailable"), nullptr);
      } else {
        pending.Resolve(
            absl::UnknownError(
                "the link to groupsvc was lost before it confirmed the command; it may have been "
                "done"),
            nullptr);
      }
    }
    if (finish_now) stream_->Finish(&status_, &finish_);
  }

  // The last operation to complete releases the call.
  void OperationDone() {
    {
      absl::MutexLock lock(&mu_);
      if (--ops_ > 0) return;
    }
    std::shared_ptr<AttachCall> keep = std::move(self_);
  }

  Link* const link_;
  GrpcLayer* const layer_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::EdgeMessage, v1::ServerMessage>> stream_;
  std::shared_ptr<AttachCall> self_;
  Tag start_{this, Tag::kStart};
  Tag read_{this, Tag::kRead};
  Tag write_{this, Tag::kWrite};
  Tag finish_{this, Tag::kFinish};
  v1::ServerMessage incoming_;  // Owned by the read in flight.
  std::string epoch_;           // The shard's history epoch; read and set by reads only.
  v1::EdgeMessage batch_;       // Owned by the write in flight.
  grpc::Status status_;         // Filled by Finish.
  absl::Mutex mu_;
  // Operations started and not yet completed.
  int ops_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool pump_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_after_write_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::Command> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Pending> awaiting_ ABSL_GUARDED_BY(mu_);
};

absl::Time GrpcLayer::Link::Tick(absl::Time now) {
  std::shared_ptr<AttachCall> call;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::InfiniteFuture();
    if (call_ != nullptr) {
      CheckConnectingLocked(now);
      return now + absl::Seconds(1);
    }
    if (now < next_attempt_) return next_attempt_;
    call = std::make_shared<AttachCall>(this, Replay());
    call_ = call;
    if (waiting_since_ == absl::InfiniteFuture()) waiting_since_ = now;
    connects_.fetch_add(1);
  }
  call->Start(call);
  return now + absl::Seconds(1);
}

void GrpcLayer::Link::Submit(v1::Command command, Pending pending, bool require_ready) {
  std::shared_ptr<AttachCall> call;
  {
    absl::MutexLock lock(&mu_);
    call = call_;
  }
  if (call == nullptr || (require_ready && !ready_)) {
    pending.Resolve(Unavailable(), nullptr);
    return;
  }
  // A membership change while the stream waits for its shard is in the table:
  // the stream carries it when it connects, and a later one replays it, so
  // the consumer need not wait for the shard to come back.
  if (!require_ready && !ready_ && pending) {
    pending.Resolve(absl::OkStatus(), nullptr);
    pending = Pending{};
  }
  switch (call->Submit(std::move(command), pending, call)) {
    case AttachCall::Queued::kYes:
      return;
    case AttachCall::Queued::kEnded:
      // The stream just ended; the next one replays memberships.
      pending.Resolve(Unavailable(), nullptr);
      return;
    case AttachCall::Queued::kFull:
      if (!ready_) {
        // Too much changed while waiting: a fresh stream replays the table instead.
        call->Cancel();
        pending.Resolve(Unavailable(), nullptr);
        return;
      }
      pending.Resolve(absl::ResourceExhaustedError("too many commands waiting for groupsvc"),
                      nullptr);
      return;
  }
}

void GrpcLayer::Link::Cancel() {
  ready_ = false;
  std::shared_ptr<AttachCall> call;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    call = call_;
  }
  if (call) call->Cancel();
}

std::vector<v1::Command> GrpcLayer::Link::Replay() const {
  std::vector<v1::Command> mine;
  const uint32_t bridge = layer_->bridge_.load();
  for (const auto& [group, channel] : layer_->table_.AllMemberships()) {
    if (layer_->GroupOwners(group, bridge).has(index_))
      mine.push_back(layer_->Join(group, channel));
  }
  for (const auto& [channel, user] : layer_->table_.Connections()) {
    if (layer_->UserOwner(user.id) == index_) mine.push_back(UserCommand(true, channel, user, 0));
  }
  return mine;
}

std::vector<std::pair<std::string, std::string>> GrpcLayer::Link::Fields(
    std::vector<std::pair<std::string, std::string>> more) const {
  std::vector<std::pair<std::string, std::string>> fields{{"target", target_}};
  if (layer_->links_.size() > 1) fields.emplace_back("shard", absl::StrCat(index_));
  for (auto& f : more) fields.push_back(std::move(f));
  return fields;
}

void GrpcLayer::Link::OnWelcome(const v1::Welcome& welcome) {
  const uint32_t count = std::max<uint32_t>(1, welcome.shard_count());
  const uint32_t bridge = welcome.bridge_shard_count();
  const auto shards = static_cast<uint32_t>(layer_->links_.size());
  // While resharding the shards accept either count's placement.
  const bool agrees = count == shards || (bridge > 0 && bridge == shards);
  if (!agrees || welcome.shard_index() != index_) {
    // Commands placed by our list would reach a shard that places them
    // elsewhere: the link stays unready, so its rooms' senders are told.
    chat::LogEvent(
        "layer_shard_mismatch",
        Fields({{"groupsvc_shard", absl::StrCat(welcome.shard_index(), "/", count)},
                {"bridge_shards", absl::StrCat(bridge)},
                {"expected", absl::StrCat(index_, "/", shards)},
                {"hint", "--groupsvc must list groupsvc's --shards, in the same order"}}));
    return;
  }
  bridge_seen_ = static_cast<int>(bridge);
  layer_->UpdateBridge();
  ready_ = true;
  {
    absl::MutexLock lock(&mu_);
    failures_ = 0;
    waiting_since_ = absl::InfiniteFuture();
    connect_failure_logged_ = false;
  }
  chat::LogEvent("layer_up", Fields({{"edge", layer_->options_.edge_id},
                                     {"prefix", layer_->table_.prefix()},
                                     {"groups", absl::StrCat(layer_->table_.groups())}}));
}

void GrpcLayer::Link::OnDraining() {
  ready_ = false;
  chat::LogEvent("layer_draining", Fields({}));
}

void GrpcLayer::Link::OnCallEnded(AttachCall* call, const grpc::Status& status) {
  ready_ = false;
  {
    absl::MutexLock lock(&mu_);
    if (call_.get() == call) call_.reset();
    ScheduleRetryLocked(status);
  }
  layer_->WakeReconnector();
}

void GrpcLayer::Link::ScheduleRetryLocked(const grpc::Status& status) {
  const GrpcLayerOptions& options = layer_->options_;
  // Capped exponential backoff with jitter in [50%, 100%]. A refusal of our
  // edge id (another process holds it) waits longer: it will not change soon.
  const bool identity = status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                        status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
  const bool refused = identity || status.error_code() == grpc::StatusCode::ALREADY_EXISTS ||
                       status.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
  const double base = absl::ToDoubleSeconds(options.min_backoff) * std::pow(2.0, failures_);
  const double cap = refused ? absl::ToDoubleSeconds(options.refused_backoff)
                             : std::min(base, absl::ToDoubleSeconds(options.max_backoff));
  absl::BitGen gen;
  const absl::Duration delay = absl::Seconds(cap * absl::Uniform(gen, 0.5, 1.0));
  if (failures_ < 30) ++failures_;
  next_attempt_ = absl::Now() + delay;
  if (refused) {
    chat::LogEvent("layer_refused",
                   Fields({{"edge", options.edge_id},
                           {"code", absl::StrCat(status.error_code())},
                           {"error", status.error_message()},
                           {"hint", identity ? "groupsvc wants a client certificate "
                                               "(--groupsvc_tls_cert, --groupsvc_tls_key) "
                                               "whose DNS names include --edge_id"
                                             : "give each edge process its own --edge_id"},
                           {"retry_in", absl::FormatDuration(delay)}}));
    return;
  }
  chat::LogEvent("layer_down", Fields({{"code", absl::StrCat(status.error_code())},
                                       {"error", status.error_message()},
                                       {"retry_in", absl::FormatDuration(delay)}}));
}

void GrpcLayer::Link::CheckConnectingLocked(absl::Time now) {
  if (ready_ || connect_failure_logged_ || now - waiting_since_ < absl::Seconds(2)) return;
  if (channel_->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) return;
  connect_failure_logged_ = true;
  const bool tls = !layer_->options_.tls.ca_file.empty();
  chat::LogEvent(
      "layer_connect_failing",
      Fields({{"tls", tls ? "on" : "off"},
              {"hint", tls ? "groupsvc is down, or the TLS handshake fails: --groupsvc_tls_ca "
                             "must sign groupsvc's certificate, which must name the host of "
                             "--groupsvc (or --groupsvc_tls_server_name), and "
                             "--groupsvc_tls_cert must be valid and signed by groupsvc's "
                             "--tls_client_ca (gRPC logs the handshake error)"
                           : "groupsvc is not reachable (or speaks TLS: set --groupsvc_tls_ca)"}}));
}

// ------------------------------------------------------------------ GrpcLayer

void GrpcLayer::Poll() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) static_cast<AttachCall::Tag*>(tag)->Done(ok);
}

GrpcLayer::GrpcLayer(GrpcLayerOptions options)
    : options_(std::move(options)),
      loops_(options_.loops ? options_.loops : std::make_shared<InlineLoops>()),
      table_(absl::StrCat(options_.edge_id, ".", RandomPrefixTag(), "!"), loops_),
      incarnation_(RandomIncarnation()) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // The channel's own reconnects, which the stream waits for (wait_for_ready):
  // with gRPC's jitter of 20% the stream is back within max_backoff of
  // groupsvc being reachable again, however long it was away.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.min_backoff)));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.min_backoff)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.max_backoff) * 5 / 6));
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  const GrpcTlsOptions& tls = options_.tls;
  if (!tls.ca_file.empty()) {
    certificates_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, tls.ca_file,
        static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(tls.reload_interval))));
    grpc::experimental::TlsChannelCredentialsOptions tls_options;
    tls_options.set_certificate_provider(certificates_);
    tls_options.watch_root_certs();
    if (!tls.cert_file.empty()) tls_options.watch_identity_key_cert_pairs();
    tls_options.set_certificate_verifier(
        std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
    credentials = grpc::experimental::TlsCredentials(tls_options);
    if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  }
  for (const std::string& target : options_.targets) {
    links_.push_back(std::make_unique<Link>(this, static_cast<uint32_t>(links_.size()), target,
                                            credentials, args));
  }
}

GrpcLayer::~GrpcLayer() { Stop(); }

void GrpcLayer::Start() {
  absl::MutexLock lock(&mu_);
  if (started_) return;
  started_ = true;
  poller_ = std::thread([this] { Poll(); });
  reconnector_ = std::thread([this] { ReconnectLoop(); });
}

void GrpcLayer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
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

void GrpcLayer::WakeReconnector() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void GrpcLayer::ReconnectLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    wake_ = false;
    mu_.Unlock();
    const absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    for (auto& link : links_) next = std::min(next, link->Tick(now));
    mu_.Lock();
    // Wake at the next attempt, or when a stream ends (which sets wake_).
    auto due = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || wake_; };
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

GrpcLayer::Owners GrpcLayer::GroupOwners(const std::string& group, uint32_t bridge) const {
  Owners owners;
  const auto shards = static_cast<uint32_t>(links_.size());
  owners.send = owners.members[0] = chat::GroupShard(group, shards);
  if (bridge == 0) return owners;
  const uint32_t other = chat::GroupShard(group, bridge);
  if (other == owners.send) return owners;
  owners.members[1] = other;
  owners.count = 2;
  // Where the bridged count places the group, every member is, as long as
  // that shard bridges (or has not said yet: a send there then fails if it is
  // down, rather than reaching only part of the room).
  if (links_[other]->bridge_seen() != 0) owners.send = other;
  return owners;
}

uint32_t GrpcLayer::ChannelOwner(const std::string& channel) const {
  const auto shards = static_cast<uint32_t>(links_.size());
  const uint32_t own = chat::ChannelShard(channel, shards);
  const uint32_t bridge = bridge_.load();
  if (bridge == 0) return own;
  // The owner of a process-local channel may be an edge with the bridged
  // count's list, attached only to the shards that count has.
  const uint32_t other = chat::ChannelShard(channel, bridge);
  return links_[other]->bridge_seen() != 0 ? other : own;
}

void GrpcLayer::UpdateBridge() {
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
    const Owners before = GroupOwners(group, previous);
    const Owners after = GroupOwners(group, next);
    for (int i = 0; i < after.count; ++i) {
      if (before.has(after.members[i])) continue;
      links_[after.members[i]]->Submit(Join(group, channel), nullptr,
                                       /*require_ready=*/false);
    }
    for (int i = 0; i < before.count; ++i) {
      if (after.has(before.members[i])) continue;
      links_[before.members[i]]->Submit(Membership(false, group, channel, nullptr), nullptr,
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
  v1::Command c = UserCommand(true, channel, user, cap);
  Link& link = *links_[UserOwner(user.id)];
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
  const Owners owners = GroupOwners(group, bridge_.load());
  for (int i = 0; i < owners.count; ++i) {
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
    links_[owners.members[i]]->Submit(Join(group, channel), std::move(answer),
                                      /*require_ready=*/false);
  }
}

void GrpcLayer::GroupDiscard(const std::string& group, const std::string& channel) {
  if (!table_.Leave(group, channel)) return;
  const Owners owners = GroupOwners(group, bridge_.load());
  // An operator closed it: its user's presence leaves at once.
  const bool leave_now = table_.ClosedByOperator(channel);
  for (int i = 0; i < owners.count; ++i) {
    v1::Command c = Membership(false, group, channel, nullptr);
    c.mutable_group_discard()->set_leave_now(leave_now);
    links_[owners.members[i]]->Submit(std::move(c), nullptr, /*require_ready=*/false);
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
  links_[ChannelOwner(channel)]->Submit(std::move(c), std::move(done), /*require_ready=*/true);
}

}  // namespace edge
