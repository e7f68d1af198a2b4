// Forwarder: what a shard does with a unary call it cannot answer alone, so
// that grpcurl (or any backend) may reach any pod behind the groupsvc Service.
//
// A call for a group or channel placed on another shard goes to that owner
// with the caller's credentials (its authorization metadata) and deadline,
// marked as forwarded so that a shard whose map disagrees refuses it
// (FAILED_PRECONDITION) instead of passing it on; the owner's answer, status
// included, is the caller's, and a caller that cancels cancels the forwarded
// call too (a forwarded Receive takes no event for nobody). A call about every
// group (ListGroups, Stats, Flush) asks every other shard for its own part
// (AskOthers), and a shard that does not answer fails the call: a listing is
// never silently partial.
//
// The calls to other shards are gRPC async client calls on the caller's own
// completion loop (no callback API: its threads would poll beside the loop's).
//
// Thread-safe; everything completes on the caller's loop.
// Lifetime: owned by GroupServer; a forwarded call holds the caller's
// UnaryCall (completion_loop.h's Call and Op) until its answer is in.
#ifndef CHAT_GROUPSVC_SHARDS_FORWARDER_H_
#define CHAT_GROUPSVC_SHARDS_FORWARDER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "groupsvc/rpc/unary_call.h"
#include "groupsvc/shards/shard_map.h"

namespace groupsvc {

class Forwarder {
 public:
  // `shards` must outlive this; `credentials` reach the other shards.
  Forwarder(const ShardMap* shards, const std::shared_ptr<grpc::ChannelCredentials>& credentials);

  // True for a call another shard forwarded: answer it from this shard alone.
  static bool IsForwarded(const grpc::ServerContextBase& context);

  // Answers `call` with shard `owner`'s answer to `method`
  // ("/groupsvc.v1.ChannelLayer/GetGroup") for the same request.
  void Forward(uint32_t owner, const std::string& method, UnaryCall* call);

  // Asks every other shard's `method` for its own part; `done` gets their raw
  // answers (this shard's slot empty), or the first failure, naming the shard.
  // `done` runs on the call's loop.
  using Answers = absl::StatusOr<std::vector<grpc::ByteBuffer>>;
  void AskOthers(const std::string& method, UnaryCall* call, std::function<void(Answers)> done);

 private:
  class ForwardCall;
  class AskRound;
  // A client context for a call on behalf of `caller`.
  void Prepare(const grpc::ServerContextBase& caller, grpc::ClientContext* context) const;

  const ShardMap* const shards_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;  // Null for this shard.
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SHARDS_FORWARDER_H_
