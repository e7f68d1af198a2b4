#include "groupsvc/group_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "groupsvc/event_json.h"
#include "groupsvc/peer_identity.h"
#include "groupsvc/self_owned.h"
#include "groupsvc/wire.h"
#include "shared/grpc_status.h"
#include "shared/log.h"

namespace groupsvc {
namespace {

using chat::ToGrpcStatus;

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

// One Receive call that waits: registered with the registry as a Receiver and
// with the timer queue. Whichever of event, timeout or cancel comes first wins;
// the registry's CancelReceive decides, so Finish runs exactly once.
class ReceiveCall : public grpc::ServerUnaryReactor,
                    public Receiver,
                    public SelfOwned<ReceiveCall> {
 public:
  ReceiveCall(GroupRegistry* registry, TimerQueue* timers, std::string channel,
              grpc::ByteBuffer* response)
      : registry_(registry), timers_(timers), channel_(std::move(channel)), response_(response) {}

  void Start(absl::Time deadline) {
    std::shared_ptr<ReceiveCall> self = shared_from_this();
    absl::StatusOr<EventPtr> event = registry_->Receive(channel_, self);
    if (!event.ok()) {
      Finish(ToGrpcStatus(event.status()));
      return;
    }
    if (*event != nullptr) {
      Respond(**event);
      return;
    }
    std::weak_ptr<ReceiveCall> weak = self;
    timer_ = timers_->Schedule(deadline, [weak] {
      if (auto call = weak.lock(); call != nullptr) call->GiveUp(grpc::Status::OK);
    });
  }

  void OnEvent(EventPtr event) override {
    timers_->Cancel(timer_);
    Respond(*event);
  }

 private:
  void Respond(const Event& event) {
    absl::StatusOr<google::protobuf::Struct> fields = StructFromEvent(event);
    absl::Status status = fields.status();
    if (status.ok()) {
      v1::ReceiveResponse response;
      *response.mutable_event() = *std::move(fields);
      status = SerializeWire(response, response_);
    }
    Finish(ToGrpcStatus(status));
  }
  void GiveUp(grpc::Status status) {
    if (!registry_->CancelReceive(channel_, this)) return;
    // Nothing in time is an empty answer, which must still be a message.
    if (status.ok()) status = ToGrpcStatus(SerializeWire(v1::ReceiveResponse(), response_));
    Finish(std::move(status));
  }
  void OnCancel() override {
    GiveUp(grpc::Status(grpc::StatusCode::CANCELLED, "Receive cancelled by the client"));
  }
  void OnDone() override {
    timers_->Cancel(timer_);
    Release();
  }

  GroupRegistry* const registry_;
  TimerQueue* const timers_;
  const std::string channel_;
  grpc::ByteBuffer* const response_;
  std::atomic<uint64_t> timer_{0};
};

}  // namespace

GroupService::GroupService(GroupRegistry* registry, TimerQueue* timers,
                           AttachOptions attach_options, const chat::Clock* clock, ApiGuard* guard,
                           bool require_client_certificate)
    : registry_(registry),
      timers_(timers),
      attach_options_(attach_options),
      clock_(clock),
      guard_(guard),
      require_client_certificate_(require_client_certificate) {}

void GroupService::Drain(absl::Duration grace) {
  draining_ = true;
  streams_.DrainAll(grace);
}

template <class Request, class Response>
grpc::ServerUnaryReactor* GroupService::Unary(
    grpc::CallbackServerContext* context, Scope scope, const Raw* request, Raw* response,
    absl::Status (GroupService::*handler)(const Caller&, const Request&, Response*)) {
  absl::StatusOr<Caller> caller = guard_->Authorize(*context, scope);
  if (!caller.ok()) return Done(context, caller.status());
  Request typed_request;
  if (absl::Status s = ParseWire(*request, &typed_request); !s.ok()) return Done(context, s);
  Response typed_response;
  absl::Status status = (this->*handler)(*caller, typed_request, &typed_response);
  if (status.ok()) status = SerializeWire(typed_response, response);
  return Done(context, status);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* GroupService::Attach(
    grpc::CallbackServerContext* context) {
  using Refuse = Refused<grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>>;
  if (draining_) {
    return Refuse::Start(grpc::Status(grpc::StatusCode::UNAVAILABLE, "groupsvc is shutting down"));
  }
  AttachIdentity identity;
  if (require_client_certificate_) {
    identity.dns_names = CertificateDnsNames(*context);
    if (!identity.dns_names.has_value()) {
      guard_->CountAttachRefused("no_certificate");
      chat::LogEvent("stream_refused", {{"peer", context->peer()}, {"reason", "no_certificate"}});
      return Refuse::Start(
          grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                       "Attach needs a client certificate signed by groupsvc's --tls_client_ca "
                       "(the edge's --groupsvc_tls_cert and --groupsvc_tls_key)"));
    }
  }
  identity.guard = guard_;
  return AttachStream::Start(registry_, &streams_, attach_options_, clock_, std::move(identity),
                             context);
}

grpc::ServerUnaryReactor* GroupService::Send(grpc::CallbackServerContext* context,
                                             const Raw* request, Raw* response) {
  return Unary(context, kScopeSend, request, response, &GroupService::DoSend);
}

grpc::ServerUnaryReactor* GroupService::Receive(grpc::CallbackServerContext* context,
                                                const Raw* raw_request, Raw* raw_response) {
  if (absl::StatusOr<Caller> caller = guard_->Authorize(*context, kScopeAdmin); !caller.ok()) {
    return Done(context, caller.status());
  }
  v1::ReceiveRequest request;
  if (absl::Status s = ParseWire(*raw_request, &request); !s.ok()) return Done(context, s);
  absl::Duration wait =
      absl::Seconds(request.timeout().seconds()) + absl::Nanoseconds(request.timeout().nanos());
  if (wait < absl::ZeroDuration() || wait > kMaxReceiveWait) {
    return Done(context,
                absl::InvalidArgumentError(absl::StrCat("timeout must be between 0 and ",
                                                        absl::FormatDuration(kMaxReceiveWait))));
  }
  if (wait == absl::ZeroDuration()) {
    absl::StatusOr<EventPtr> event = registry_->Receive(request.channel());
    if (!event.ok()) return Done(context, event.status());
    v1::ReceiveResponse response;
    if (*event != nullptr) {
      absl::StatusOr<google::protobuf::Struct> fields = StructFromEvent(**event);
      if (!fields.ok()) return Done(context, fields.status());
      *response.mutable_event() = *std::move(fields);
    }
    return Done(context, SerializeWire(response, raw_response));
  }
  // A call deadline that comes first is gRPC's to enforce: the call is
  // cancelled (OnCancel) and the client sees DEADLINE_EXCEEDED, never an
  // empty answer racing it.
  auto call = ReceiveCall::Make(registry_, timers_, request.channel(), raw_response);
  call->Start(absl::Now() + wait);
  return call.get();
}

grpc::ServerUnaryReactor* GroupService::NewChannel(grpc::CallbackServerContext* context,
                                                   const Raw* request, Raw* response) {
  return Unary(context, kScopeAdmin, request, response, &GroupService::DoNewChannel);
}

grpc::ServerUnaryReactor* GroupService::GroupAdd(grpc::CallbackServerContext* context,
                                                 const Raw* request, Raw* response) {
  return Unary(context, kScopeAdmin, request, response, &GroupService::DoGroupAdd);
}

grpc::ServerUnaryReactor* GroupService::GroupDiscard(grpc::CallbackServerContext* context,
                                                     const Raw* request, Raw* response) {
  return Unary(context, kScopeAdmin, request, response, &GroupService::DoGroupDiscard);
}

grpc::ServerUnaryReactor* GroupService::GroupSend(grpc::CallbackServerContext* context,
                                                  const Raw* request, Raw* response) {
  return Unary(context, kScopeSend, request, response, &GroupService::DoGroupSend);
}

grpc::ServerUnaryReactor* GroupService::Flush(grpc::CallbackServerContext* context,
                                              const Raw* request, Raw* response) {
  return Unary(context, kScopeAdmin, request, response, &GroupService::DoFlush);
}

grpc::ServerUnaryReactor* GroupService::ListGroups(grpc::CallbackServerContext* context,
                                                   const Raw* request, Raw* response) {
  return Unary(context, kScopeRead, request, response, &GroupService::DoListGroups);
}

grpc::ServerUnaryReactor* GroupService::GetGroup(grpc::CallbackServerContext* context,
                                                 const Raw* request, Raw* response) {
  return Unary(context, kScopeRead, request, response, &GroupService::DoGetGroup);
}

grpc::ServerUnaryReactor* GroupService::Stats(grpc::CallbackServerContext* context,
                                              const Raw* request, Raw* response) {
  return Unary(context, kScopeRead, request, response, &GroupService::DoStats);
}

// ------------------------------------------------------------ Typed handlers

absl::Status GroupService::DoSend(const Caller& caller, const v1::SendRequest& request,
                                  v1::SendResponse* response) {
  absl::StatusOr<EventPtr> event = EventFromStruct(request.event());
  if (!event.ok()) return event.status();
  return registry_->Send(request.channel(), *std::move(event), caller.quota);
}

absl::Status GroupService::DoNewChannel(const Caller& caller, const v1::NewChannelRequest& request,
                                        v1::NewChannelResponse* response) {
  absl::StatusOr<std::string> name = registry_->NewChannel(request.prefix());
  if (!name.ok()) return name.status();
  response->set_channel(*name);
  return absl::OkStatus();
}

absl::Status GroupService::DoGroupAdd(const Caller& caller, const v1::GroupAddRequest& request,
                                      v1::GroupAddResponse* response) {
  return registry_->GroupAdd(request.group(), request.channel());
}

absl::Status GroupService::DoGroupDiscard(const Caller& caller,
                                          const v1::GroupDiscardRequest& request,
                                          v1::GroupDiscardResponse* response) {
  return registry_->GroupDiscard(request.group(), request.channel());
}

absl::Status GroupService::DoGroupSend(const Caller& caller, const v1::GroupSendRequest& request,
                                       v1::GroupSendResponse* response) {
  absl::StatusOr<EventPtr> event = EventFromStruct(request.event());
  if (!event.ok()) return event.status();
  absl::StatusOr<SendReport> report =
      registry_->GroupSend(request.group(), *std::move(event), caller.quota);
  if (!report.ok()) return report.status();
  response->set_delivered(report->delivered);
  response->set_dropped(report->dropped);
  response->set_unsettled(report->unsettled);
  return absl::OkStatus();
}

absl::Status GroupService::DoFlush(const Caller& caller, const v1::FlushRequest& request,
                                   v1::FlushResponse* response) {
  registry_->Flush();
  return absl::OkStatus();
}

absl::Status GroupService::DoListGroups(const Caller& caller, const v1::ListGroupsRequest& request,
                                        v1::ListGroupsResponse* response) {
  size_t page_size = request.page_size() == 0 ? 100 : std::min<size_t>(request.page_size(), 1000);
  GroupPage page = registry_->ListGroups(request.name_prefix(), page_size, request.page_token());
  for (const GroupSummary& g : page.groups) {
    v1::GroupSummary* out = response->add_groups();
    out->set_name(g.name);
    out->set_size(g.size);
  }
  response->set_next_page_token(page.next_page_token);
  return absl::OkStatus();
}

absl::Status GroupService::DoGetGroup(const Caller& caller, const v1::GetGroupRequest& request,
                                      v1::Group* response) {
  absl::StatusOr<GroupInfo> info = registry_->GetGroup(request.name());
  if (!info.ok()) return info.status();
  response->set_name(info->name);
  response->set_size(info->members.size());
  for (const MemberInfo& m : info->members) {
    v1::Member* out = response->add_members();
    out->set_channel(m.channel);
    out->set_edge_id(m.edge_id);
    *out->mutable_joined() = ToProto(m.joined);
    *out->mutable_renewed() = ToProto(m.renewed);
  }
  return absl::OkStatus();
}

absl::Status GroupService::DoStats(const Caller& caller, const v1::StatsRequest& request,
                                   v1::StatsResponse* response) {
  StatsSnapshot s = registry_->Stats();
  response->set_groups(s.groups);
  response->set_memberships(s.memberships);
  response->set_channels(s.channels);
  response->set_queued_events(s.queued_events);
  response->set_attached_edges(s.attached_edges);
  response->set_events_in(s.events_in);
  response->set_events_out(s.events_out);
  response->set_stream_deliveries(s.stream_deliveries);
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    (*response->mutable_drops())[std::string(DropReasonName(static_cast<DropReason>(i)))] =
        s.drops[i];
  }
  return absl::OkStatus();
}

}  // namespace groupsvc
