#include "groupsvc/rpc/attach_stream.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "groupsvc/rpc/commands.h"
#include "groupsvc/rpc/wire.h"
#include "groupsvc/security/peer_identity.h"
#include "shared/log.h"

namespace groupsvc {

// ------------------------------------------------------------------ StreamSet

bool StreamSet::Add(const std::shared_ptr<AttachStream>& stream) {
  absl::MutexLock lock(&mu_);
  if (draining_) return false;
  streams_.push_back(stream);
  return true;
}

void StreamSet::Remove(const AttachStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(std::remove_if(streams_.begin(), streams_.end(),
                                [&](const std::weak_ptr<AttachStream>& w) {
                                  auto s = w.lock();
                                  return s == nullptr || s.get() == stream;
                                }),
                 streams_.end());
}

void StreamSet::DrainAll(absl::Duration grace) {
  std::vector<std::shared_ptr<AttachStream>> live;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    for (const auto& w : streams_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& s : live) s->Drain(grace);
}

bool StreamSet::WaitEmpty(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto empty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return streams_.empty(); };
  return mu_.AwaitWithDeadline(absl::Condition(&empty), deadline);
}

size_t StreamSet::size() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

// --------------------------------------------------------------- AttachStream

void AttachStream::Listen(CompletionLoop* loop, const AttachEnv* env) {
  auto stream = std::make_shared<AttachStream>(loop, env);
  stream->context_.AsyncNotifyWhenDone(stream->done_.Tag());
  env->request(&stream->context_, &stream->stream_, loop->cq(), stream->arrived_.Tag());
}

AttachStream::AttachStream(CompletionLoop* loop, const AttachEnv* env)
    : Call(loop), env_(env), registry_(env->registry), options_(env->options) {}

void AttachStream::OnComplete(Op* op, bool ok) {
  if (op == &arrived_) {
    if (!ok) {
      done_.Abandon();  // The server is shutting down; no call came.
      return;
    }
    Listen(loop(), env_);
    Begin();
  } else if (op == &read_) {
    OnReadDone(ok);
  } else if (op == &written_) {
    OnWriteDone(ok);
  } else if (op == &done_) {
    {
      absl::MutexLock lock(&mu_);
      reading_ = Reading::kDone;
    }
    if (context_.IsCancelled()) OnCancel();
    OnDone();
  } else if (op == &held_) {
    {
      absl::MutexLock lock(&mu_);
      if (writing_ == Writing::kHeld) writing_ = Writing::kIdle;
    }
    Pump();
  }
  // finished_op_: the status went out (or the call broke); done_ follows.
}

void AttachStream::Begin() {
  peer_ = context_.peer();
  identity_.guard = env_->guard;
  if (env_->api_needs_tls && !OverTls(context_)) {
    RequestFinish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, kHealthPortOnly));
    return;
  }
  if (env_->require_client_certificate) {
    identity_.dns_names = CertificateDnsNames(context_);
    if (!identity_.dns_names.has_value()) {
      if (env_->guard != nullptr) env_->guard->CountAttachRefused("no_certificate");
      chat::LogEvent("stream_refused", {{"peer", peer_}, {"reason", "no_certificate"}});
      RequestFinish(
          grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                       "Attach needs a client certificate signed by groupsvc's --tls_client_ca "
                       "(the edge's --groupsvc_tls_cert and --groupsvc_tls_key)"));
      return;
    }
  }
  if (!env_->streams->Add(std::static_pointer_cast<AttachStream>(shared_from_this()))) {
    RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "groupsvc is shutting down"));
    return;
  }
  stream_.Read(&incoming_raw_, read_.Tag());
}

void AttachStream::PumpSoon() { CompletionLoop::AtRoundEnd(shared_from_this()); }

void AttachStream::OnReadDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    if (reading_ == Reading::kDone) return;  // After the call ended: nothing to apply.
  }
  if (!ok) {
    // The edge closed its side (or the call broke): flush what is queued, then end.
    RequestFinish(grpc::Status::OK);
    return;
  }
  absl::Status parsed = ParseWire(incoming_raw_, &incoming_);
  incoming_raw_.Clear();  // Holds no slices while reads are paused.
  if (!parsed.ok()) {
    chat::LogEvent("stream_bad_message", {{"peer", peer_}, {"edge", edge_id_}});
    RequestFinish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(parsed.message())));
    return;
  }
  const bool first = !attached_;
  if (!attached_) {
    if (!incoming_.has_hello()) {
      chat::LogEvent("stream_refused", {{"peer", peer_}, {"reason", "no_hello"}});
      RequestFinish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                 "the first message on an Attach stream must carry hello "
                                 "(edge_id, channel_prefix and incarnation)"));
      return;
    }
    HandleHello(incoming_.hello());
    if (!attached_) return;
  } else if (incoming_.has_hello()) {
    RequestFinish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                               "hello may be sent only once per stream"));
    return;
  }
  env_->streams->CountIn();
  for (const v1::Command& command : incoming_.commands()) {
    Outgoing item;
    item.ack = ApplyCommand(*registry_, command, quota_, options_.shards, edge_id_);
    item.bytes = item.ack->ByteSizeLong();
    PushControl(std::move(item));
  }
  // The edge replays its memberships with its hello: its groups are whole again.
  if (first) registry_->ReplayApplied(edge_id_, generation_);
  {
    absl::MutexLock lock(&mu_);
    if (finish_status_.has_value()) return;
    // The next read is asked for after the round's writes have started: in
    // gRPC 1.51 asking for it makes the transport send a WINDOW_UPDATE at
    // once, which then follows this round's answer to the edge instead of
    // reaching it alone, ahead of it (bench/README.md, "One polling thread").
    reading_ = queue_bytes_ > options_.max_queue_bytes / 2 ? Reading::kPaused : Reading::kDue;
  }
  PumpSoon();
}

void AttachStream::OnRoundEnd() {
  Pump();
  {
    absl::MutexLock lock(&mu_);
    if (reading_ != Reading::kDue || finish_status_.has_value()) return;
    reading_ = Reading::kInFlight;
  }
  stream_.Read(&incoming_raw_, read_.Tag());
}

void AttachStream::HandleHello(const v1::Hello& hello) {
  if (identity_.dns_names.has_value() && !EdgeIdAllowed(hello.edge_id(), *identity_.dns_names)) {
    const std::string names = absl::StrJoin(*identity_.dns_names, ",");
    if (identity_.guard != nullptr) identity_.guard->CountAttachRefused("identity");
    chat::LogEvent("stream_refused", {{"peer", peer_},
                                      {"edge", hello.edge_id()},
                                      {"reason", "identity"},
                                      {"certificate_names", names}});
    RequestFinish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                               absl::StrCat("the client certificate (DNS names [", names,
                                            "]) does not admit edge id \"", hello.edge_id(),
                                            "\"; an edge may attach only as a name its certificate "
                                            "carries")));
    return;
  }
  // Set before registering: a newer stream of this edge may call Replaced()
  // from another thread as soon as AttachEdge has run.
  edge_id_ = hello.edge_id();
  AttachRequest request{hello.edge_id(), hello.channel_prefix(), hello.incarnation(), peer_};
  absl::StatusOr<Attachment> attachment =
      registry_->AttachEdge(request, std::static_pointer_cast<AttachStream>(shared_from_this()));
  if (!attachment.ok()) {
    const absl::StatusCode code = attachment.status().code();
    chat::LogEvent("stream_refused",
                   {{"peer", peer_},
                    {"edge", hello.edge_id()},
                    {"reason", code == absl::StatusCode::kAlreadyExists ? "in_use" : "bad_hello"},
                    {"detail", attachment.status().message()}});
    RequestFinish(grpc::Status(static_cast<grpc::StatusCode>(attachment.status().code()),
                               std::string(attachment.status().message())));
    return;
  }
  attached_ = true;
  generation_ = attachment->generation;
  if (identity_.guard != nullptr) quota_ = identity_.guard->EdgeQuota(edge_id_);
  chat::LogEvent("edge_attached", {{"edge", edge_id_},
                                   {"prefix", hello.channel_prefix()},
                                   {"peer", peer_},
                                   {"replaced", attachment->replaced_previous ? "true" : "false"},
                                   {"identity", identity_.dns_names ? "certificate" : "none"}});
  Outgoing item;
  item.welcome.emplace();
  item.welcome->set_edge_id(edge_id_);
  item.welcome->set_max_event_bytes(registry_->options().max_event_bytes);
  item.welcome->set_history_epoch(registry_->history_epoch());
  item.welcome->set_capacity(static_cast<uint32_t>(registry_->options().capacity));
  item.welcome->set_expiry_seconds(
      static_cast<uint32_t>(absl::ToInt64Seconds(registry_->options().expiry)));
  item.welcome->set_group_expiry_seconds(
      static_cast<uint32_t>(absl::ToInt64Seconds(registry_->options().group_expiry)));
  item.welcome->set_replaced_previous(attachment->replaced_previous);
  if (options_.shards != nullptr) {
    item.welcome->set_shard_index(options_.shards->self());
    item.welcome->set_shard_count(options_.shards->count());
    item.welcome->set_bridge_shard_count(options_.shards->bridge());
  }
  PushControl(std::move(item));
}

bool AttachStream::Deliver(const EventPtr& event, std::vector<std::string> channels,
                           absl::string_view group, uint64_t offset, absl::string_view epoch) {
  Outgoing item;
  item.bytes = event->ByteSize() + group.size();
  for (const auto& c : channels) item.bytes += c.size() + 2;
  {
    absl::MutexLock lock(&mu_);
    if (life_ != Life::kOpen || queue_bytes_ + item.bytes > options_.max_queue_bytes) return false;
    item.event = event;
    item.channels = std::move(channels);
    item.group = std::string(group);
    item.offset = offset;
    item.epoch = std::string(epoch);
    item.expires = env_->clock->Now() + registry_->options().expiry;
    queue_bytes_ += item.bytes;
    queue_.push_back(std::move(item));
  }
  PumpSoon();
  return true;
}

bool AttachStream::PushControl(Outgoing item) {
  {
    absl::MutexLock lock(&mu_);
    if (life_ >= Life::kBroken) return false;
    queue_bytes_ += item.bytes;
    queue_.push_back(std::move(item));
  }
  PumpSoon();
  return true;
}

void AttachStream::Replaced() {
  chat::LogEvent("edge_replaced", {{"edge", edge_id_}, {"peer", peer_}});
  {
    absl::MutexLock lock(&mu_);
    if (life_ == Life::kOpen) life_ = Life::kClosed;
  }
  RequestFinish(
      grpc::Status(grpc::StatusCode::ABORTED,
                   absl::StrCat("replaced by a newer stream of edge \"", edge_id_, "\"")));
}

bool AttachStream::CloseUser(const UserClose& close) {
  Outgoing item;
  item.close.emplace();
  item.close->set_user_id(close.user_id);
  item.close->set_group(close.group);
  item.close->set_code(close.code);
  item.close->set_reason(close.reason);
  item.bytes = item.close->ByteSizeLong();
  {
    absl::MutexLock lock(&mu_);
    if (life_ != Life::kOpen) return false;
  }
  return PushControl(std::move(item));
}

void AttachStream::Drain(absl::Duration grace) {
  Outgoing item;
  item.draining.emplace();
  item.draining->mutable_grace()->set_seconds(absl::ToInt64Seconds(grace));
  {
    absl::MutexLock lock(&mu_);
    ending_ = Ending::kDrained;
  }
  PushControl(std::move(item));
  {
    absl::MutexLock lock(&mu_);
    if (life_ == Life::kOpen) life_ = Life::kClosed;
  }
  RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "groupsvc is shutting down"));
}

void AttachStream::RequestFinish(grpc::Status status) {
  {
    absl::MutexLock lock(&mu_);
    if (!finish_status_.has_value()) finish_status_ = std::move(status);
    // A held write goes now (the alarm's cancellation pumps).
    if (writing_ == Writing::kHeld) hold_alarm_.Cancel();
  }
  Pump();
}

bool AttachStream::HoldLocked(absl::Time now) {
  if (options_.coalesce_delay <= absl::ZeroDuration() || finish_status_.has_value() ||
      item_rate_ < options_.coalesce_above_rate) {
    return false;
  }
  const absl::Time due = last_write_ + options_.coalesce_delay;
  // (A clock stepped back past the last write holds nothing: it never
  // waits longer than the delay.)
  if (now >= due || now < last_write_) return false;
  writing_ = Writing::kHeld;
  hold_alarm_.Set(loop()->cq(), absl::ToChronoTime(due), held_.Tag());
  return true;
}

void AttachStream::FillBatchLocked() {
  batch_.Clear();
  const absl::Time now = env_->clock->Now();
  size_t bytes = 0;
  uint64_t expired = 0;
  while (!queue_.empty() &&
         (bytes == 0 || bytes + queue_.front().bytes <= options_.max_batch_bytes)) {
    Outgoing item = std::move(queue_.front());
    queue_.pop_front();
    queue_bytes_ -= item.bytes;
    if (item.welcome) *batch_.mutable_welcome() = std::move(*item.welcome);
    if (item.draining) *batch_.mutable_draining() = std::move(*item.draining);
    if (item.ack) *batch_.add_acks() = std::move(*item.ack);
    if (item.close) *batch_.add_closes() = std::move(*item.close);
    if (item.event != nullptr) {
      if (item.expires <= now) {
        expired += item.channels.size();
        continue;
      }
      v1::Delivery* d = batch_.add_deliveries();
      d->mutable_event()->set_type(item.event->type);
      d->mutable_event()->set_json(item.event->json);
      for (auto& c : item.channels) d->add_channels(std::move(c));
      d->set_group(std::move(item.group));
      d->set_offset(item.offset);
      if (!item.epoch.empty()) d->set_epoch(std::move(item.epoch));
    }
    bytes += item.bytes;
    // Control messages go out at once, in order, and end a batch.
    if (item.welcome || item.draining) break;
  }
  if (expired > 0) registry_->CountDrop(DropReason::kExpired, expired);
}

void AttachStream::Pump() {
  bool write = false;
  std::optional<grpc::Status> finish;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ != Writing::kIdle || life_ == Life::kFinishing) return;
    if (!queue_.empty() && life_ != Life::kBroken) {
      const absl::Time now = absl::Now();
      if (HoldLocked(now)) return;
      const size_t before = queue_.size();
      FillBatchLocked();
      write = batch_.ByteSizeLong() > 0;
      if (write) {
        writing_ = Writing::kInFlight;
        last_write_ = now;
        window_items_ += before - queue_.size();
        if (now - window_start_ >= absl::Milliseconds(100)) {
          item_rate_ = window_start_ == absl::InfinitePast()
                           ? 0
                           : window_items_ / absl::ToDoubleSeconds(now - window_start_);
          window_start_ = now;
          window_items_ = 0;
        }
      }
    }
    if (!write && queue_.empty() && finish_status_.has_value()) {
      life_ = Life::kFinishing;
      finish = finish_status_;
    }
  }
  if (write) {
    // batch_ belongs to this write until OnWriteDone: serialized without mu_.
    if (!SerializeWire(batch_, &batch_raw_).ok()) {
      OnWriteDone(false);
      return;
    }
    env_->streams->CountOut();
    stream_.Write(batch_raw_, written_.Tag());
  } else if (finish.has_value()) {
    stream_.Finish(*finish, finished_op_.Tag());
  }
}

void AttachStream::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = Writing::kIdle;
    if (!ok) {
      // The call is broken: nothing queued can be written any more.
      life_ = Life::kBroken;
      if (ending_ != Ending::kDrained) ending_ = Ending::kBroken;
      uint64_t lost = 0;
      for (const Outgoing& item : queue_) lost += item.channels.size();
      if (lost > 0) registry_->CountDrop(DropReason::kEdgeGone, lost);
      queue_.clear();
      queue_bytes_ = 0;
      if (!finish_status_.has_value()) {
        finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
      }
    }
  }
  ResumeReadsIfDrained();
  Pump();
}

void AttachStream::ResumeReadsIfDrained() {
  {
    absl::MutexLock lock(&mu_);
    if (reading_ != Reading::kPaused || finish_status_.has_value() ||
        queue_bytes_ > options_.max_queue_bytes / 4) {
      return;
    }
    reading_ = Reading::kInFlight;
  }
  stream_.Read(&incoming_raw_, read_.Tag());
}

void AttachStream::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    if (life_ != Life::kFinishing) life_ = Life::kBroken;
    if (ending_ != Ending::kDrained) ending_ = Ending::kBroken;
    queue_.clear();
    queue_bytes_ = 0;
  }
  RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
}

void AttachStream::OnDone() {
  if (attached_) {
    bool lost;
    {
      absl::MutexLock lock(&mu_);
      // Drained by groupsvc or closed by the edge (then finished with OK): on
      // purpose. Anything else may leave the edge believing in its members.
      lost = ending_ != Ending::kDrained &&
             (ending_ == Ending::kBroken || !finish_status_.has_value() || !finish_status_->ok());
    }
    registry_->DetachEdge(edge_id_, generation_,
                          lost ? DetachReason::kLost : DetachReason::kClosed);
    chat::LogEvent("edge_detached",
                   {{"edge", edge_id_}, {"peer", peer_}, {"lost", lost ? "true" : "false"}});
  }
  env_->streams->Remove(this);
}

}  // namespace groupsvc
