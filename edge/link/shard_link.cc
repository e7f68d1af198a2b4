#include "edge/link/shard_link.h"

#include <algorithm>
#include <cmath>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shared/log.h"

namespace edge {

namespace v1 = ::groupsvc::v1;

namespace {

absl::Status Unavailable() { return absl::UnavailableError("the chat service is unavailable"); }

}  // namespace

ShardLink::ShardLink(const LinkContext& context, Host* host, uint32_t index, uint32_t shards,
                     std::string target,
                     const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                     const grpc::ChannelArguments& args, Backoff backoff, bool tls)
    : context_(context),
      host_(host),
      index_(index),
      shards_(shards),
      target_(std::move(target)),
      backoff_(backoff),
      tls_(tls),
      channel_(grpc::CreateCustomChannel(target_, credentials, args)),
      stub_(v1::ChannelLayer::NewStub(channel_)) {}

absl::Time ShardLink::Tick(absl::Time now) {
  std::shared_ptr<AttachCall> call;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kStopped) return absl::InfiniteFuture();
    if (call_ != nullptr) {
      CheckConnectingLocked(now);
      return now + absl::Seconds(1);
    }
    if (now < next_attempt_) return next_attempt_;
    call = std::make_shared<AttachCall>(context_, static_cast<AttachCall::Observer*>(this),
                                        host_->Replay(index_));
    call_ = call;
    if (waiting_since_ == absl::InfiniteFuture()) waiting_since_ = now;
    connects_.fetch_add(1);
  }
  call->Start(stub_.get());
  return now + absl::Seconds(1);
}

void ShardLink::Submit(v1::Command command, Pending pending, bool require_ready) {
  std::shared_ptr<AttachCall> call;
  {
    absl::MutexLock lock(&mu_);
    call = call_;
  }
  const bool up = ready();
  if (call == nullptr || (require_ready && !up)) {
    pending.Resolve(Unavailable(), nullptr);
    return;
  }
  if (!require_ready && !up && pending) {
    pending.Resolve(absl::OkStatus(), nullptr);
    pending = Pending{};
  }
  switch (call->Submit(std::move(command), pending)) {
    case AttachCall::Queued::kYes:
      return;
    case AttachCall::Queued::kEnded:
      // The call just ended; the next one replays memberships.
      pending.Resolve(Unavailable(), nullptr);
      return;
    case AttachCall::Queued::kFull:
      if (!up) {
        // Too much changed while waiting: a fresh call replays the table instead.
        call->Cancel();
        pending.Resolve(Unavailable(), nullptr);
        return;
      }
      pending.Resolve(absl::ResourceExhaustedError("too many commands waiting for groupsvc"),
                      nullptr);
      return;
  }
}

void ShardLink::Cancel() {
  std::shared_ptr<AttachCall> call;
  {
    absl::MutexLock lock(&mu_);
    state_ = State::kStopped;
    call = call_;
  }
  if (call) call->Cancel();
}

void ShardLink::AwaitGone(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto gone = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return call_ == nullptr; };
  mu_.AwaitWithDeadline(absl::Condition(&gone), deadline);
}

void ShardLink::Drain(absl::Time deadline) {
  std::shared_ptr<AttachCall> call;
  {
    absl::MutexLock lock(&mu_);
    call = call_;
  }
  if (call != nullptr && ready()) call->AwaitAcked(deadline);
}

std::vector<std::pair<std::string, std::string>> ShardLink::Fields(
    std::vector<std::pair<std::string, std::string>> more) const {
  std::vector<std::pair<std::string, std::string>> fields{{"target", target_}};
  if (shards_ > 1) fields.emplace_back("shard", absl::StrCat(index_));
  for (auto& f : more) fields.push_back(std::move(f));
  return fields;
}

void ShardLink::OnWelcome(const v1::Welcome& welcome) {
  const uint32_t count = std::max<uint32_t>(1, welcome.shard_count());
  const uint32_t bridge = welcome.bridge_shard_count();
  // While resharding the shards accept either count's placement.
  const bool agrees = count == shards_ || (bridge > 0 && bridge == shards_);
  if (!agrees || welcome.shard_index() != index_) {
    // Commands placed by our list would reach a shard that places them
    // elsewhere: the link stays down, so its rooms' senders are told.
    chat::LogEvent(
        "layer_shard_mismatch",
        Fields({{"groupsvc_shard", absl::StrCat(welcome.shard_index(), "/", count)},
                {"bridge_shards", absl::StrCat(bridge)},
                {"expected", absl::StrCat(index_, "/", shards_)},
                {"hint", "--groupsvc must list groupsvc's --shards, in the same order"}}));
    return;
  }
  bridge_seen_ = static_cast<int>(bridge);
  host_->OnBridgeSeen();
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kStopped) return;
    state_ = State::kUp;
    failures_ = 0;
    waiting_since_ = absl::InfiniteFuture();
    connect_failure_logged_ = false;
  }
  chat::LogEvent("layer_up", Fields({{"edge", context_.edge_id},
                                     {"prefix", context_.table->prefix()},
                                     {"groups", absl::StrCat(context_.table->groups())}}));
}

void ShardLink::OnDraining() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kStopped) return;
    state_ = State::kDraining;
  }
  chat::LogEvent("layer_draining", Fields({}));
}

void ShardLink::OnEnded(AttachCall* call, const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kStopped) state_ = State::kDown;
    if (call_.get() == call) call_.reset();
    ScheduleRetryLocked(status);
  }
  host_->OnLinkDown();
}

void ShardLink::ScheduleRetryLocked(const grpc::Status& status) {
  // Capped exponential backoff with jitter in [50%, 100%]. A refusal of our
  // edge id (another process holds it) waits longer: it will not change soon.
  const bool identity = status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                        status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
  const bool refused = identity || status.error_code() == grpc::StatusCode::ALREADY_EXISTS ||
                       status.error_code() == grpc::StatusCode::INVALID_ARGUMENT;
  const double base = absl::ToDoubleSeconds(backoff_.min) * std::pow(2.0, failures_);
  const double cap = refused ? absl::ToDoubleSeconds(backoff_.refused)
                             : std::min(base, absl::ToDoubleSeconds(backoff_.max));
  absl::BitGen gen;
  const absl::Duration delay = absl::Seconds(cap * absl::Uniform(gen, 0.5, 1.0));
  if (failures_ < 30) ++failures_;
  next_attempt_ = absl::Now() + delay;
  if (refused) {
    chat::LogEvent("layer_refused",
                   Fields({{"edge", context_.edge_id},
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

// Logs layer_connect_failing once when the call has waited a while for a
// channel whose connection attempts fail.
void ShardLink::CheckConnectingLocked(absl::Time now) {
  if (state_ == State::kUp || connect_failure_logged_ || now - waiting_since_ < absl::Seconds(2))
    return;
  if (channel_->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) return;
  connect_failure_logged_ = true;
  chat::LogEvent(
      "layer_connect_failing",
      Fields(
          {{"tls", tls_ ? "on" : "off"},
           {"hint", tls_ ? "groupsvc is down, or the TLS handshake fails: --groupsvc_tls_ca "
                           "must sign groupsvc's certificate, which must name the host of "
                           "--groupsvc (or --groupsvc_tls_server_name), and "
                           "--groupsvc_tls_cert must be valid and signed by groupsvc's "
                           "--tls_client_ca (gRPC logs the handshake error)"
                         : "groupsvc is not reachable (or speaks TLS: set --groupsvc_tls_ca)"}}));
}

}  // namespace edge
