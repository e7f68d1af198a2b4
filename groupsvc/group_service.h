// GroupService: the groupsvc.v1.ChannelLayer gRPC service. It creates an
// AttachStream per edge and answers the unary RPCs from the GroupRegistry.
//
// Every unary call passes the ApiGuard first (token, scope, rate; see
// api_guard.h), before its request is even parsed. With
// `require_client_certificate`, an Attach stream without a verified client
// certificate ends at once with UNAUTHENTICATED, and its hello must name an
// edge id the certificate's DNS names admit (else PERMISSION_DENIED, see
// AttachStream).
//
//   GroupService service(&registry, &timers, AttachOptions{}, &clock, &guard, true);
//   builder.RegisterService(&service);
//   ...
//   service.Drain(absl::Seconds(10));  // on SIGTERM: refuse new streams, drain the rest
//
// Every method is registered raw (grpc::ByteBuffer in and out) and parses its
// request itself (wire.h): a request that is not the method's message is
// INVALID_ARGUMENT with the reason, where gRPC 1.51's generated callback
// handlers would answer UNIMPLEMENTED. Reflection still describes the typed
// methods (it reads layer.proto's descriptors, not the handlers).
//
// Sharded (ShardMap): a call for a group or channel placed on another shard
// is forwarded to its owner, and ListGroups, Stats and Flush cover every shard
// (Forwarder); Attach-stream commands for another shard's groups are refused
// (FAILED_PRECONDITION: the edge's shard list differs).
//
// Thread-safe; no reaction blocks.
#ifndef CHAT_GROUPSVC_GROUP_SERVICE_H_
#define CHAT_GROUPSVC_GROUP_SERVICE_H_

#include <atomic>
#include <optional>

#include "groupsvc/api_guard.h"
#include "groupsvc/attach_stream.h"
#include "groupsvc/forwarder.h"
#include "groupsvc/group_registry.h"
#include "groupsvc/timer_queue.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace groupsvc {

namespace internal {
using C = v1::ChannelLayer;
using RawChannelLayer = C::WithRawCallbackMethod_Attach<C::WithRawCallbackMethod_Send<
    C::WithRawCallbackMethod_Receive<C::WithRawCallbackMethod_NewChannel<
        C::WithRawCallbackMethod_GroupAdd<C::WithRawCallbackMethod_GroupDiscard<
            C::WithRawCallbackMethod_GroupSend<C::WithRawCallbackMethod_Flush<
                C::WithRawCallbackMethod_ListGroups<C::WithRawCallbackMethod_GetGroup<
                    C::WithRawCallbackMethod_GetHistory<C::WithRawCallbackMethod_GetPresence<
                        C::WithRawCallbackMethod_Stats<C::Service>>>>>>>>>>>>>;
}  // namespace internal

class GroupService final : public internal::RawChannelLayer {
 public:
  // `guard` and `forwarder` (null when unsharded) must outlive the service.
  GroupService(GroupRegistry* registry, TimerQueue* timers, AttachOptions attach_options,
               const chat::Clock* clock, ApiGuard* guard, bool require_client_certificate,
               Forwarder* forwarder = nullptr);

  // Refuses new Attach streams (UNAVAILABLE) and tells attached edges to go.
  void Drain(absl::Duration grace);
  size_t attached_streams() const { return streams_.size(); }
  const StreamSet& streams() const { return streams_; }

  using Raw = grpc::ByteBuffer;
  grpc::ServerBidiReactor<Raw, Raw>* Attach(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* context, const Raw* request,
                                 Raw* response) override;
  grpc::ServerUnaryReactor* Receive(grpc::CallbackServerContext* context, const Raw* request,
                                    Raw* response) override;
  grpc::ServerUnaryReactor* NewChannel(grpc::CallbackServerContext* context, const Raw* request,
                                       Raw* response) override;
  grpc::ServerUnaryReactor* GroupAdd(grpc::CallbackServerContext* context, const Raw* request,
                                     Raw* response) override;
  grpc::ServerUnaryReactor* GroupDiscard(grpc::CallbackServerContext* context, const Raw* request,
                                         Raw* response) override;
  grpc::ServerUnaryReactor* GroupSend(grpc::CallbackServerContext* context, const Raw* request,
                                      Raw* response) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* context, const Raw* request,
                                  Raw* response) override;
  grpc::ServerUnaryReactor* ListGroups(grpc::CallbackServerContext* context, const Raw* request,
                                       Raw* response) override;
  grpc::ServerUnaryReactor* GetGroup(grpc::CallbackServerContext* context, const Raw* request,
                                     Raw* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context, const Raw* request,
                                  Raw* response) override;
  grpc::ServerUnaryReactor* GetHistory(grpc::CallbackServerContext* context, const Raw* request,
                                       Raw* response) override;
  grpc::ServerUnaryReactor* GetPresence(grpc::CallbackServerContext* context, const Raw* request,
                                        Raw* response) override;

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

  // Which shard answers a call: this one, or the owner of a group's or a
  // channel's name (the request's `key`).
  enum class Placed { kHere, kByGroup, kByChannel };
  template <class Request>
  struct Placement {
    Placed by = Placed::kHere;
    const std::string& (Request::*key)() const = nullptr;
  };

  // Authorizes the caller for `scope`, parses the request, forwards it to the
  // shard that owns it (`method`, `placement`) or runs `handler`, serializes
  // its response, finishes.
  template <class Request, class Response>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, Scope scope,
                                  const Raw* request, Raw* response,
                                  absl::Status (GroupService::*handler)(const Caller&,
                                                                        const Request&, Response*),
                                  const char* method = nullptr, Placement<Request> placement = {});
  // As Unary, answered by every shard: this one's response, then `merge`d
  // with each other shard's own (asked with the same request).
  template <class Request, class Response>
  grpc::ServerUnaryReactor* Everywhere(
      grpc::CallbackServerContext* context, Scope scope, const char* method, const Raw* request,
      Raw* response,
      absl::Status (GroupService::*handler)(const Caller&, const Request&, Response*),
      void (*merge)(const Request&, const Response& other, Response* into));
  // The shard that answers `name` when it is not this one; for a call that was
  // itself forwarded, FAILED_PRECONDITION instead (the maps disagree).
  absl::StatusOr<std::optional<uint32_t>> Elsewhere(grpc::CallbackServerContext* context, Placed by,
                                                    absl::string_view name) const;

  GroupRegistry* const registry_;
  TimerQueue* const timers_;
  const AttachOptions attach_options_;
  const chat::Clock* const clock_;
  ApiGuard* const guard_;
  const bool require_client_certificate_;
  Forwarder* const forwarder_;
  StreamSet streams_;
  std::atomic<bool> draining_{false};
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_GROUP_SERVICE_H_
