#include "edge/link/attach_call.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "shared/log.h"
#include "shared/reason.h"

namespace edge {

namespace v1 = ::groupsvc::v1;

void Pending::Resolve(const absl::Status& status, const v1::Ack* ack) {
  if (answer) {
    answer(status, ack);
  } else if (done) {
    done(status);
  }
}

absl::Status AckStatus(const v1::Ack& ack) {
  if (ack.code() != 0) {
    absl::Status refused(static_cast<absl::StatusCode>(ack.code()), ack.message());
    return ack.reason().empty() ? refused : chat::WithReason(std::move(refused), ack.reason());
  }
  if (ack.unsettled()) {
    return absl::UnknownError(
        "groupsvc cannot see every member of the room right now (it restarted, or an edge was "
        "lost, moments ago), so it may not have reached everyone");
  }
  return absl::OkStatus();
}

AttachCall::AttachCall(const LinkContext& context, Observer* observer,
                       std::vector<v1::Command> replay)
    : link_(context), observer_(observer) {
  v1::Hello* hello = batch_.mutable_hello();
  hello->set_edge_id(link_.edge_id);
  hello->set_channel_prefix(link_.table->prefix());
  hello->set_incarnation(link_.incarnation);
  for (v1::Command& command : replay) {
    v1::Command* c = batch_.add_commands();
    *c = std::move(command);
    c->set_request_id(next_id_++);
    ++unacked_;
  }
}

void AttachCall::Start(v1::ChannelLayer::Stub* stub) {
  // Waits for groupsvc to be reachable instead of failing at once, so the
  // stream starts as soon as the channel connects (see the backoff).
  context_.set_wait_for_ready(true);
  stream_ = stub->PrepareAsyncAttach(&context_, link_.cq);
  stream_->StartCall(Begin(start_));
}

AttachCall::Queued AttachCall::Submit(v1::Command command, Pending pending) {
  const size_t loop = link_.loops->current();
  const bool defer = loop != EventLoops::kNone;
  bool post = false;
  {
    absl::MutexLock lock(&mu_);
    if (phase_ != Phase::kOpen) return Queued::kEnded;
    if (queue_.size() + awaiting_.size() >= link_.max_pending) return Queued::kFull;
    command.set_request_id(next_id_++);
    ++unacked_;
    if (pending) awaiting_.emplace(command.request_id(), std::move(pending));
    queue_.push_back(std::move(command));
    if (defer && writer_ == Writer::kIdle) {
      writer_ = Writer::kPosted;
      post = true;
    }
  }
  if (!defer) {
    Pump();
  } else if (post) {
    link_.loops->Post(loop, [weak = weak_from_this()] {
      if (auto call = weak.lock()) call->Pump();
    });
  }
  return Queued::kYes;
}

bool AttachCall::AwaitAcked(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return unacked_ == 0 || phase_ != Phase::kOpen;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&settled), deadline);
}

void AttachCall::Op::Complete(bool ok) {
  // Released when this returns: the call may end here.
  std::shared_ptr<AttachCall> keep = std::move(hold_);
  call_->OnCompleted(kind_, ok);
}

void AttachCall::Pump() {
  {
    absl::MutexLock lock(&mu_);
    if (writer_ == Writer::kWriting) return;
    if (phase_ != Phase::kOpen || queue_.empty()) {
      writer_ = Writer::kIdle;
      return;
    }
    batch_.Clear();
    size_t bytes = 0;
    while (!queue_.empty() && bytes < link_.max_batch_bytes) {
      bytes += queue_.front().ByteSizeLong();
      *batch_.add_commands() = std::move(queue_.front());
      queue_.pop_front();
    }
    writer_ = Writer::kWriting;
  }
  stream_->Write(batch_, Begin(write_));
}

void AttachCall::OnCompleted(Op::Kind kind, bool ok) {
  switch (kind) {
    case Op::kStart:
      if (!ok) {
        {
          absl::MutexLock lock(&mu_);
          writer_ = Writer::kIdle;  // The Hello was never written,
          phase_ = Phase::kEnded;   // and nothing else will be.
        }
        EndCall();
        return;
      }
      stream_->Read(&incoming_, Begin(read_));
      stream_->Write(batch_, Begin(write_));
      return;
    case Op::kRead:
      if (!ok) {
        EndCall();
        return;
      }
      OnRead();
      stream_->Read(&incoming_, Begin(read_));
      return;
    case Op::kWrite: {
      bool finish = false;
      {
        absl::MutexLock lock(&mu_);
        writer_ = Writer::kIdle;
        if (!ok && phase_ == Phase::kOpen) phase_ = Phase::kBroken;
        finish = phase_ == Phase::kEnded;
      }
      if (finish) {
        Finish();
      } else if (ok) {
        Pump();
      }
      return;
    }
    case Op::kFinish:
      observer_->OnEnded(this, status_);
      return;
  }
}

void AttachCall::OnRead() {
  if (incoming_.has_welcome()) {
    epoch_ = incoming_.welcome().history_epoch();
    observer_->OnWelcome(incoming_.welcome());
  }
  if (incoming_.has_draining()) observer_->OnDraining();
  ChannelTable& table = *link_.table;
  for (const v1::CloseConnections& close : incoming_.closes()) {
    const uint16_t code =
        static_cast<uint16_t>(close.code() >= 4000 && close.code() <= 4999 ? close.code() : 4010);
    const size_t n = table.CloseUser(close.user_id(), close.group(), code, close.reason());
    chat::LogEvent("user_closed", {{"user", close.user_id()},
                                   {"group", close.group()},
                                   {"code", absl::StrCat(code)},
                                   {"connections", absl::StrCat(n)}});
  }
  for (const v1::Ack& ack : incoming_.acks()) {
    Pending pending;
    {
      absl::MutexLock lock(&mu_);
      if (unacked_ > 0) --unacked_;
      auto it = awaiting_.find(ack.request_id());
      if (it != awaiting_.end()) {
        pending = std::move(it->second);
        awaiting_.erase(it);
      }
    }
    pending.Resolve(AckStatus(ack), &ack);
  }
  if (incoming_.deliveries_size() > 0) {
    ChannelTable::Handoff handoff(table);
    for (const v1::Delivery& d : incoming_.deliveries()) {
      LayerEventPtr event = LayerEvent::FromWire(d.event().type(), d.event().json(), d.offset(),
                                                 d.offset() == 0     ? std::string()
                                                 : d.epoch().empty() ? epoch_
                                                                     : d.epoch());
      table.Deliver(d.channels(), event, handoff);
    }
  }
}

void AttachCall::EndCall() {
  absl::flat_hash_map<uint64_t, Pending> awaiting;
  absl::flat_hash_set<uint64_t> unsent;
  bool finish_now = false;
  {
    absl::MutexLock lock(&mu_);
    phase_ = Phase::kEnded;
    awaiting.swap(awaiting_);
    for (const v1::Command& c : queue_) unsent.insert(c.request_id());
    queue_.clear();
    // With a write in flight, its completion asks for the status.
    finish_now = writer_ != Writer::kWriting;
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
  if (finish_now) Finish();
}

void AttachCall::Finish() {
  {
    absl::MutexLock lock(&mu_);
    phase_ = Phase::kFinishing;
  }
  stream_->Finish(&status_, Begin(finish_));
}

}  // namespace edge
