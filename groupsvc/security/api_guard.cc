#include "groupsvc/security/api_guard.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace groupsvc {
namespace {

constexpr size_t kMaxCallers = 4096;

// "ipv4:10.0.0.1:5000" -> "ipv4:10.0.0.1"; "ipv6:[::1]:5000" -> "ipv6:[::1]".
std::string PeerAddress(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  if (colon == std::string::npos || colon < peer.find(':') + 1) return peer;
  return peer.substr(0, colon);
}

// The token of an "authorization: Bearer <token>" header; empty if none.
absl::string_view BearerToken(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() || !absl::StartsWithIgnoreCase(value, kScheme)) return {};
  return absl::StripAsciiWhitespace(value.substr(kScheme.size()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiGuard>> ApiGuard::Create(ApiOptions options) {
  if (options.rate < 0 || options.burst < 0) {
    return absl::InvalidArgumentError("the API rate and burst must not be negative");
  }
  if (options.burst == 0) options.burst = std::max(1.0, options.rate);
  std::unique_ptr<ApiGuard> guard(new ApiGuard(std::move(options)));
  if (!guard->options_.tokens_file.empty()) {
    absl::StatusOr<std::unique_ptr<ApiTokens>> tokens =
        ApiTokens::Load(guard->options_.tokens_file, guard->options_.tokens_check_interval);
    if (!tokens.ok()) return tokens.status();
    guard->tokens_ = *std::move(tokens);
  }
  return guard;
}

absl::StatusOr<Caller> ApiGuard::Authorize(const grpc::ServerContextBase& context, Scope scope) {
  Caller caller;
  if (tokens_ != nullptr) {
    const absl::string_view presented = BearerToken(context);
    if (presented.empty()) {
      Count("unauthenticated", "");
      return absl::UnauthenticatedError(
          "groupsvc's API needs `authorization: Bearer <token>` metadata (see --api_tokens_file)");
    }
    std::optional<ApiTokens::Match> match = tokens_->Find(presented);
    if (!match.has_value()) {
      Count("unauthenticated", "");
      return absl::UnauthenticatedError("unknown or revoked API token");
    }
    if ((match->scopes & scope) == 0) {
      Count("permission_denied", match->name);
      return absl::PermissionDeniedError(
          absl::StrCat("token \"", match->name, "\" has the scopes [", ScopeNames(match->scopes),
                       "]; this method needs \"", ScopeName(scope), "\""));
    }
    caller.name = absl::StrCat("token:", match->name);
    caller.token = match->name;
  } else {
    caller.name = absl::StrCat("peer:", PeerAddress(context.peer()));
  }
  if (!TakeCall(caller.name, &caller.quota)) {
    Count("rate_limited", caller.token);
    return absl::ResourceExhaustedError(absl::StrCat("rate limit: ", caller.name, " may make ",
                                                     options_.rate, " calls a second (",
                                                     options_.burst, " at once); retry later"));
  }
  Count("ok", caller.token);
  return caller;
}

std::shared_ptr<QueueQuota> ApiGuard::NewQuota(const std::string& owner) const {
  if (options_.caller_queued_bytes == 0) return nullptr;
  return std::make_shared<QueueQuota>(owner, options_.caller_queued_bytes);
}

bool ApiGuard::TakeCall(const std::string& key, std::shared_ptr<QueueQuota>* quota) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&callers_mu_);
  if (!callers_.contains(key)) PruneLocked(now);
  auto [it, inserted] = callers_.try_emplace(key);
  CallerState& state = it->second;
  if (inserted) {
    state.tokens = options_.burst;
    state.refilled = now;
    state.quota = NewQuota(key);
  }
  *quota = state.quota;
  if (options_.rate <= 0) return true;
  state.tokens = std::min(
      options_.burst, state.tokens + absl::ToDoubleSeconds(now - state.refilled) * options_.rate);
  state.refilled = now;
  if (state.tokens < 1) return false;
  state.tokens -= 1;
  return true;
}

std::shared_ptr<QueueQuota> ApiGuard::EdgeQuota(absl::string_view edge_id) {
  if (options_.caller_queued_bytes == 0) return nullptr;
  const std::string key = absl::StrCat("edge:", edge_id);
  absl::MutexLock lock(&callers_mu_);
  if (!callers_.contains(key)) PruneLocked(absl::Now());
  auto [it, inserted] = callers_.try_emplace(key);
  if (inserted) {
    it->second.tokens = options_.burst;
    it->second.refilled = absl::Now();
    it->second.quota = NewQuota(key);
  }
  return it->second.quota;
}

void ApiGuard::PruneLocked(absl::Time now) {
  if (callers_.size() < kMaxCallers) return;
  absl::erase_if(callers_, [&](const auto& entry) {
    const CallerState& s = entry.second;
    const bool full =
        options_.rate <= 0 ||
        s.tokens + absl::ToDoubleSeconds(now - s.refilled) * options_.rate >= options_.burst;
    const bool idle = s.quota == nullptr || (s.quota.use_count() == 1 && s.quota->bytes() == 0);
    return full && idle;
  });
}

void ApiGuard::Count(absl::string_view result, absl::string_view token) {
  absl::MutexLock lock(&counts_mu_);
  ++calls_[std::make_pair(std::string(result), std::string(token))];
}

void ApiGuard::CountAttachRefused(absl::string_view reason) {
  absl::MutexLock lock(&counts_mu_);
  ++attach_refused_[std::string(reason)];
}

std::vector<std::pair<std::pair<std::string, std::string>, uint64_t>> ApiGuard::CallCounts() const {
  absl::MutexLock lock(&counts_mu_);
  return {calls_.begin(), calls_.end()};
}

std::vector<std::pair<std::string, uint64_t>> ApiGuard::AttachRefusals() const {
  absl::MutexLock lock(&counts_mu_);
  return {attach_refused_.begin(), attach_refused_.end()};
}

}  // namespace groupsvc
