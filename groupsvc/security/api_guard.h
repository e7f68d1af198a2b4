// ApiGuard: who may call groupsvc's unary API, and how much.
//
// With a tokens file (ApiTokens), every unary ChannelLayer call must carry
// `authorization: Bearer <token>` metadata naming a token with the method's
// scope: none, a malformed one, or an unknown (or revoked) token is
// UNAUTHENTICATED; a token without the scope is PERMISSION_DENIED. Without a
// file the API is open, as before. Health and reflection are other services
// and never pass here; Attach streams are authorized by their client
// certificate (see GroupService), not by tokens.
//
// Each caller (the token's name; with an open API, the client address) also
// gets a token bucket of unary calls (`rate` per second, `burst` at once;
// past it RESOURCE_EXHAUSTED) and a QueueQuota of undelivered event bytes,
// as does each edge for its stream's sends. Every decision is counted by
// result and token name for the metrics.
//
//   auto guard = ApiGuard::Create(options);
//   absl::StatusOr<Caller> caller = (*guard)->Authorize(*context, kScopeSend);
//   if (!caller.ok()) return Done(context, caller.status());
//   registry.Send(channel, event, caller->quota);
//
// Thread-safe; Authorize takes two short locks and hashes the token once.
// Lifetime: made once by GroupServer, which outlives every call; a Caller's
// quota is a shared_ptr, so a queued copy can refund it after the call ends.
#ifndef CHAT_GROUPSVC_SECURITY_API_GUARD_H_
#define CHAT_GROUPSVC_SECURITY_API_GUARD_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "groupsvc/registry/queue_quota.h"
#include "groupsvc/security/api_tokens.h"

namespace groupsvc {

struct ApiOptions {
  // NAME SCOPES TOKEN lines (see api_tokens.h); empty: the unary API is open.
  std::string tokens_file;
  // How often the tokens file is looked at for changes, at most.
  absl::Duration tokens_check_interval = absl::Seconds(1);
  // Unary calls per second per caller, and how many at once; rate 0: no limit.
  double rate = 0;
  double burst = 0;  // 0: max(1, rate).
  // Bytes of undelivered events one caller (token, client address or edge)
  // may have queued on channels no edge owns; 0: no limit of its own.
  size_t caller_queued_bytes = 0;
};

struct Caller {
  // "token:NAME", or "peer:ADDRESS" with an open API.
  std::string name;
  // The token's name ("" with an open API), as metrics label it.
  std::string token;
  std::shared_ptr<QueueQuota> quota;
};

class ApiGuard {
 public:
  // Fails if the tokens file cannot be read or is invalid.
  static absl::StatusOr<std::unique_ptr<ApiGuard>> Create(ApiOptions options);

  // True without a tokens file.
  bool open() const { return tokens_ == nullptr; }
  size_t token_count() const { return tokens_ ? tokens_->size() : 0; }
  const ApiOptions& options() const { return options_; }

  // The caller of a unary call that needs `scope`, or its refusal
  // (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED), counted.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContextBase& context, Scope scope);
  // The queue quota of an attached edge (shared by its streams).
  std::shared_ptr<QueueQuota> EdgeQuota(absl::string_view edge_id);
  // An Attach stream refused for its certificate ("no_certificate", "identity").
  void CountAttachRefused(absl::string_view reason);

  // For the metrics: (result, token) -> calls; reason -> refused streams.
  std::vector<std::pair<std::pair<std::string, std::string>, uint64_t>> CallCounts() const;
  std::vector<std::pair<std::string, uint64_t>> AttachRefusals() const;

 private:
  explicit ApiGuard(ApiOptions options) : options_(std::move(options)) {}

  struct CallerState {
    double tokens = 0;  // The bucket's level.
    absl::Time refilled;
    std::shared_ptr<QueueQuota> quota;
  };
  // Takes one call from `key`'s bucket; false when it is empty.
  bool TakeCall(const std::string& key, std::shared_ptr<QueueQuota>* quota);
  std::shared_ptr<QueueQuota> NewQuota(const std::string& owner) const;
  void Count(absl::string_view result, absl::string_view token);
  // Forgets callers with a full bucket and nothing queued, past a bound.
  void PruneLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(callers_mu_);

  const ApiOptions options_;
  std::unique_ptr<ApiTokens> tokens_;

  absl::Mutex callers_mu_;
  absl::flat_hash_map<std::string, CallerState> callers_ ABSL_GUARDED_BY(callers_mu_);

  mutable absl::Mutex counts_mu_;
  absl::flat_hash_map<std::pair<std::string, std::string>, uint64_t> calls_
      ABSL_GUARDED_BY(counts_mu_);
  absl::flat_hash_map<std::string, uint64_t> attach_refused_ ABSL_GUARDED_BY(counts_mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SECURITY_API_GUARD_H_
