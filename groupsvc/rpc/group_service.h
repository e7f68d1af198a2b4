// GroupService: the groupsvc.v1.ChannelLayer gRPC service on groupsvc's
// completion loops (gRPC's async API, every method raw). An AttachStream
// waits for each edge's stream; every unary call is a UnaryCall answered from
// the GroupRegistry by the handlers below, on the loop that polled it.
//
// Every unary call passes the ApiGuard first (token, scope, rate; see
// api_guard.h), before its request is even parsed. With
// `require_client_certificate`, an Attach stream without a verified client
// certificate ends at once with UNAUTHENTICATED, and its hello must name an
// edge id the certificate's DNS names admit (else PERMISSION_DENIED, see
// AttachStream). With `api_needs_tls`, a call or stream that did not come
// over TLS (it came to the plaintext health port) is UNIMPLEMENTED: that
// port serves grpc.health.v1 (and reflection, which describes the public API).
//
//   GroupService service(&registry, AttachOptions{}, &clock, &guard, true, false);
//   builder.RegisterService(service.service());
//   ... service.Listen(&loop);  // for each loop, once the server has started
//   service.Drain(absl::Seconds(10));  // on SIGTERM: refuse new streams, drain the rest
//
// Every method parses its request itself (wire.h): a request that is not
// the method's message is INVALID_ARGUMENT with the reason. Reflection still
// describes the typed methods (it reads layer.proto's descriptors).
//
// Sharded (ShardMap): a call for a group or channel placed on another shard
// is forwarded to its owner, and ListGroups, Stats and Flush cover every shard
// (Forwarder); Attach-stream commands for another shard's groups are refused
// (FAILED_PRECONDITION: the edge's shard list differs).
//
// Thread-safe; no handler blocks.
#ifndef CHAT_GROUPSVC_RPC_GROUP_SERVICE_H_
#define CHAT_GROUPSVC_RPC_GROUP_SERVICE_H_

#include <memory>
#include <optional>
#include <vector>

#include "groupsvc/registry/group_registry.h"
#include "groupsvc/rpc/attach_stream.h"
#include "groupsvc/rpc/completion_loop.h"
#include "groupsvc/rpc/unary_call.h"
#include "groupsvc/security/api_guard.h"
#include "groupsvc/shards/forwarder.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace groupsvc {

namespace internal {
using C = v1::ChannelLayer;
using AsyncChannelLayer = C::WithRawMethod_Attach<C::WithRawMethod_Send<C::WithRawMethod_Receive<
    C::WithRawMethod_NewChannel<C::WithRawMethod_GroupAdd<C::WithRawMethod_GroupDiscard<
        C::WithRawMethod_GroupSend<C::WithRawMethod_Flush<C::WithRawMethod_ListGroups<
            C::WithRawMethod_GetGroup<C::WithRawMethod_GetHistory<C::WithRawMethod_GetPresence<
                C::WithRawMethod_Stats<C::WithRawMethod_Disconnect<C::WithRawMethod_RemoveFromGroup<
                    C::WithRawMethod_GetUser<C::Service>>>>>>>>>>>>>>>>;
}  // namespace internal

class GroupService {
 public:
  // `guard` and `forwarder` (null when unsharded) must outlive the service.
  GroupService(GroupRegistry* registry, AttachOptions attach_options, const chat::Clock* clock,
               ApiGuard* guard, bool require_client_certificate, bool api_needs_tls,
               Forwarder* forwarder = nullptr);

  grpc::Service* service() { return &service_; }
  // Posts a request for every method on `loop`, once the server has started.
  void Listen(CompletionLoop* loop);
  // Refuses new Attach streams (UNAVAILABLE) and tells attached edges to go.
  void Drain(absl::Duration grace);
  size_t attached_streams() const { return streams_.size(); }
  const StreamSet& streams() const { return streams_; }

  // The longest a Receive waits.
  static constexpr absl::Duration kMaxReceiveWait = absl::Seconds(60);

 private:
  // The typed handlers of the unary RPCs that answer at once.
  absl::Status DoSend(const Caller& caller, const v1::SendRequest& request,
                      v1::SendResponse* response);
  absl::Status DoNewChannel(const Caller& caller, const v1::NewChannelRequest& request,
                            v1::NewChannelResponse* response);
  absl::Status DoGroupAdd(const Caller& caller, const v1::GroupAddRequest& request,
                          v1::GroupAddResponse* response);
  absl::Status DoGroupDiscard(const Caller& caller, const v1::GroupDiscardRequest& request,
                              v1::GroupDiscardResponse* response);
  absl::Status DoGroupSend(const Caller& caller, const v1::GroupSendRequest& request,
                           v1::GroupSendResponse* response);
  absl::Status DoFlush(const Caller& caller, const v1::FlushRequest& request,
                       v1::FlushResponse* response);
  absl::Status DoListGroups(const Caller& caller, const v1::ListGroupsRequest& request,
                            v1::ListGroupsResponse* response);
  absl::Status DoGetGroup(const Caller& caller, const v1::GetGroupRequest& request,
                          v1::Group* response);
  absl::Status DoStats(const Caller& caller, const v1::StatsRequest& request,
                       v1::StatsResponse* response);
  absl::Status DoGetHistory(const Caller& caller, const v1::GetHistoryRequest& request,
                            v1::GetHistoryResponse* response);
  absl::Status DoGetPresence(const Caller& caller, const v1::GetPresenceRequest& request,
                             v1::GetPresenceResponse* response);
  absl::Status DoDisconnect(const Caller& caller, const v1::DisconnectRequest& request,
                            v1::DisconnectResponse* response);
  absl::Status DoRemoveFromGroup(const Caller& caller, const v1::RemoveFromGroupRequest& request,
                                 v1::RemoveFromGroupResponse* response);
  absl::Status DoGetUser(const Caller& caller, const v1::GetUserRequest& request,
                         v1::GetUserResponse* response);

  // Which shard answers a call: this one, or the owner of a group's or a
  // channel's name, or of a user's id (the request's `key`).
  enum class Placed { kHere, kByGroup, kByChannel, kByUser };
  template <class Request>
  struct Placement {
    Placed by = Placed::kHere;
    const std::string& (Request::*key)() const = nullptr;
  };

  // Adds a unary method: `request` is the service's RequestX, `handle` its handler.
  template <class RequestFn>
  void AddMethod(RequestFn request, void (GroupService::*handle)(UnaryCall*));
  // Authorizes the caller for `scope`, parses the request, forwards it to the
  // shard that owns it (`method`, `placement`) or runs `handler`, replies.
  template <class Request, class Response>
  void Unary(UnaryCall* call, Scope scope,
             absl::Status (GroupService::*handler)(const Caller&, const Request&, Response*),
             const char* method = nullptr, Placement<Request> placement = {});
  // As Unary, answered by every shard: this one's response, then `merge`d
  // with each other shard's own (asked with the same request).
  template <class Request, class Response>
  void Everywhere(UnaryCall* call, Scope scope, const char* method,
                  absl::Status (GroupService::*handler)(const Caller&, const Request&, Response*),
                  void (*merge)(const Request&, const Response& other, Response* into));
  // The shard that answers `name` when it is not this one; for a call that was
  // itself forwarded, FAILED_PRECONDITION instead (the maps disagree).
  absl::StatusOr<std::optional<uint32_t>> Elsewhere(const grpc::ServerContextBase& context,
                                                    Placed by, absl::string_view name) const;
  // UNIMPLEMENTED for a call to the plaintext health port (see above).
  absl::Status CheckPort(const grpc::ServerContextBase& context) const;

  void HandleSend(UnaryCall* call);
  void HandleReceive(UnaryCall* call);
  void HandleNewChannel(UnaryCall* call);
  void HandleGroupAdd(UnaryCall* call);
  void HandleGroupDiscard(UnaryCall* call);
  void HandleGroupSend(UnaryCall* call);
  void HandleFlush(UnaryCall* call);
  void HandleListGroups(UnaryCall* call);
  void HandleGetGroup(UnaryCall* call);
  void HandleGetHistory(UnaryCall* call);
  void HandleGetPresence(UnaryCall* call);
  void HandleStats(UnaryCall* call);
  void HandleDisconnect(UnaryCall* call);
  void HandleRemoveFromGroup(UnaryCall* call);
  void HandleGetUser(UnaryCall* call);

  GroupRegistry* const registry_;
  const AttachOptions attach_options_;
  ApiGuard* const guard_;
  const bool api_needs_tls_;
  Forwarder* const forwarder_;
  internal::AsyncChannelLayer service_;
  StreamSet streams_;
  AttachEnv attach_env_;
  std::vector<std::unique_ptr<UnaryMethod>> methods_;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_RPC_GROUP_SERVICE_H_
