#include "groupsvc/group_service.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "groupsvc/commands.h"
#include "groupsvc/event_json.h"
#include "groupsvc/peer_identity.h"
#include "groupsvc/self_owned.h"
#include "groupsvc/wire.h"
#include "shared/grpc_status.h"
#include "shared/log.h"
#include "shared/names.h"

namespace groupsvc {
namespace {

using chat::ToGrpcStatus;

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
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

size_t PageSize(const v1::ListGroupsRequest& request) {
  return request.page_size() == 0 ? 100 : std::min<size_t>(request.page_size(), 1000);
}

// Each shard's page holds its first page_size groups after the token, with a
// token of its own when it has more: the merged page is the first page_size
// of their union, and has a token when the union was cut or any part had
// more. An `other` without groups adds nothing and orders and cuts what is
// there (idempotent: what a cut drops ranks lower still in the union, and a
// token set stays set); Everywhere ends with one.
void MergeGroupPages(const v1::ListGroupsRequest& request, const v1::ListGroupsResponse& other,
                     v1::ListGroupsResponse* into) {
  for (const v1::GroupSummary& g : other.groups()) *into->add_groups() = g;
  if (!other.next_page_token().empty()) into->set_next_page_token(other.next_page_token());
  if (other.groups_size() > 0) return;
  auto* groups = into->mutable_groups();
  std::sort(
      groups->begin(), groups->end(),
      [](const v1::GroupSummary& a, const v1::GroupSummary& b) { return a.name() < b.name(); });
  const size_t page_size = PageSize(request);
  bool more = !into->next_page_token().empty();
  if (static_cast<size_t>(groups->size()) > page_size) {
    groups->DeleteSubrange(page_size, groups->size() - page_size);
    more = true;
  }
  into->clear_next_page_token();
  if (more && !groups->empty()) into->set_next_page_token(groups->rbegin()->name());
}

void MergeStats(const v1::StatsRequest&, const v1::StatsResponse& other, v1::StatsResponse* into) {
  into->set_groups(into->groups() + other.groups());
  into->set_memberships(into->memberships() + other.memberships());
  into->set_channels(into->channels() + other.channels());
  into->set_queued_events(into->queued_events() + other.queued_events());
  into->set_attached_edges(std::max(into->attached_edges(), other.attached_edges()));
  into->set_events_in(into->events_in() + other.events_in());
  into->set_events_out(into->events_out() + other.events_out());
  into->set_stream_deliveries(into->stream_deliveries() + other.stream_deliveries());
  for (const auto& [reason, n] : other.drops()) (*into->mutable_drops())[reason] += n;
}

}  // namespace

GroupService::GroupService(GroupRegistry* registry, TimerQueue* timers,
                           AttachOptions attach_options, const chat::Clock* clock, ApiGuard* guard,
                           bool require_client_certificate, Forwarder* forwarder)
    : registry_(registry),
      timers_(timers),
      attach_options_(attach_options),
      clock_(clock),
      guard_(guard),
      require_client_certificate_(require_client_certificate),
      forwarder_(forwarder) {}

absl::StatusOr<std::optional<uint32_t>> GroupService::Elsewhere(
    grpc::CallbackServerContext* context, Placed by, absl::string_view name) const {
  const ShardMap* shards = attach_options_.shards;
  if (forwarder_ == nullptr || shards == nullptr || by == Placed::kHere) return std::nullopt;
  // An invalid name is refused here, with the rule it breaks.
  if (by == Placed::kByGroup ? !chat::ValidateGroupName(name).ok()
                             : !chat::ValidateChannelName(name).ok()) {
    return std::nullopt;
  }
  const uint32_t owner =
      by == Placed::kByGroup ? shards->GroupOwner(name) : shards->ChannelOwner(name);
  if (owner == shards->self()) return std::nullopt;
  if (Forwarder::IsForwarded(*context)) {
    return by == Placed::kByGroup ? shards->CheckGroup(name) : shards->CheckChannel(name);
  }
  return owner;
}

void GroupService::Drain(absl::Duration grace) {
  draining_ = true;
  streams_.DrainAll(grace);
}

template <class Request, class Response>
grpc::ServerUnaryReactor* GroupService::Unary(
    grpc::CallbackServerContext* context, Scope scope, const Raw* request, Raw* response,
    absl::Status (GroupService::*handler)(const Caller&, const Request&, Response*),
    const char* method, Placement<Request> placement) {
  absl::StatusOr<Caller> caller = guard_->Authorize(*context, scope);
  if (!caller.ok()) return Done(context, caller.status());
  Request typed_request;
  if (absl::Status s = ParseWire(*request, &typed_request); !s.ok()) return Done(context, s);
  if (placement.key != nullptr) {
    absl::StatusOr<std::optional<uint32_t>> owner =
        Elsewhere(context, placement.by, (typed_request.*placement.key)());
    if (!owner.ok()) return Done(context, owner.status());
    if (owner->has_value()) return forwarder_->Forward(**owner, method, context, request, response);
  }
  Response typed_response;
  absl::Status status = (this->*handler)(*caller, typed_request, &typed_response);
  if (status.ok()) status = SerializeWire(typed_response, response);
  return Done(context, status);
}

template <class Request, class Response>
grpc::ServerUnaryReactor* GroupService::Everywhere(
    grpc::CallbackServerContext* context, Scope scope, const char* method, const Raw* request,
    Raw* response, absl::Status (GroupService::*handler)(const Caller&, const Request&, Response*),
    void (*merge)(const Request&, const Response& other, Response* into)) {
  if (forwarder_ == nullptr || Forwarder::IsForwarded(*context)) {
    return Unary(context, scope, request, response, handler);
  }
  absl::StatusOr<Caller> caller = guard_->Authorize(*context, scope);
  if (!caller.ok()) return Done(context, caller.status());
  auto typed_request = std::make_shared<Request>();
  if (absl::Status s = ParseWire(*request, typed_request.get()); !s.ok()) return Done(context, s);
  auto mine = std::make_shared<Response>();
  if (absl::Status s = (this->*handler)(*caller, *typed_request, mine.get()); !s.ok()) {
    return Done(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  forwarder_->AskOthers(
      method, context, *request,
      [reactor, response, typed_request, mine, merge](Forwarder::Answers answers) {
        if (!answers.ok()) {
          reactor->Finish(ToGrpcStatus(answers.status()));
          return;
        }
        for (const grpc::ByteBuffer& raw : *answers) {
          if (raw.Length() == 0) continue;  // This shard's slot.
          Response other;
          if (absl::Status s = ParseWire(raw, &other); !s.ok()) {
            reactor->Finish(ToGrpcStatus(s));
            return;
          }
          merge(*typed_request, other, mine.get());
        }
        merge(*typed_request, Response(), mine.get());  // The final pass: order and page.
        reactor->Finish(ToGrpcStatus(SerializeWire(*mine, response)));
      });
  return reactor;
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
  return Unary(context, kScopeSend, request, response, &GroupService::DoSend,
               "/groupsvc.v1.ChannelLayer/Send",
               Placement<v1::SendRequest>{Placed::kByChannel, &v1::SendRequest::channel});
}

grpc::ServerUnaryReactor* GroupService::Receive(grpc::CallbackServerContext* context,
                                                const Raw* raw_request, Raw* raw_response) {
  if (absl::StatusOr<Caller> caller = guard_->Authorize(*context, kScopeAdmin); !caller.ok()) {
    return Done(context, caller.status());
  }
  v1::ReceiveRequest request;
  if (absl::Status s = ParseWire(*raw_request, &request); !s.ok()) return Done(context, s);
  absl::StatusOr<std::optional<uint32_t>> owner =
      Elsewhere(context, Placed::kByChannel, request.channel());
  if (!owner.ok()) return Done(context, owner.status());
  if (owner->has_value()) {
    return forwarder_->Forward(**owner, "/groupsvc.v1.ChannelLayer/Receive", context, raw_request,
                               raw_response);
  }
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
  return Unary(context, kScopeAdmin, request, response, &GroupService::DoGroupAdd,
               "/groupsvc.v1.ChannelLayer/GroupAdd",
               Placement<v1::GroupAddRequest>{Placed::kByGroup, &v1::GroupAddRequest::group});
}

grpc::ServerUnaryReactor* GroupService::GroupDiscard(grpc::CallbackServerContext* context,
                                                     const Raw* request, Raw* response) {
  return Unary(
      context, kScopeAdmin, request, response, &GroupService::DoGroupDiscard,
      "/groupsvc.v1.ChannelLayer/GroupDiscard",
      Placement<v1::GroupDiscardRequest>{Placed::kByGroup, &v1::GroupDiscardRequest::group});
}

grpc::ServerUnaryReactor* GroupService::GroupSend(grpc::CallbackServerContext* context,
                                                  const Raw* request, Raw* response) {
  return Unary(context, kScopeSend, request, response, &GroupService::DoGroupSend,
               "/groupsvc.v1.ChannelLayer/GroupSend",
               Placement<v1::GroupSendRequest>{Placed::kByGroup, &v1::GroupSendRequest::group});
}

grpc::ServerUnaryReactor* GroupService::Flush(grpc::CallbackServerContext* context,
                                              const Raw* request, Raw* response) {
  return Everywhere(
      context, kScopeAdmin, "/groupsvc.v1.ChannelLayer/Flush", request, response,
      &GroupService::DoFlush,
      +[](const v1::FlushRequest&, const v1::FlushResponse&, v1::FlushResponse*) {});
}

grpc::ServerUnaryReactor* GroupService::ListGroups(grpc::CallbackServerContext* context,
                                                   const Raw* request, Raw* response) {
  return Everywhere(context, kScopeRead, "/groupsvc.v1.ChannelLayer/ListGroups", request, response,
                    &GroupService::DoListGroups, &MergeGroupPages);
}

grpc::ServerUnaryReactor* GroupService::GetGroup(grpc::CallbackServerContext* context,
                                                 const Raw* request, Raw* response) {
  return Unary(context, kScopeRead, request, response, &GroupService::DoGetGroup,
               "/groupsvc.v1.ChannelLayer/GetGroup",
               Placement<v1::GetGroupRequest>{Placed::kByGroup, &v1::GetGroupRequest::name});
}

grpc::ServerUnaryReactor* GroupService::GetHistory(grpc::CallbackServerContext* context,
                                                   const Raw* request, Raw* response) {
  return Unary(context, kScopeRead, request, response, &GroupService::DoGetHistory,
               "/groupsvc.v1.ChannelLayer/GetHistory",
               Placement<v1::GetHistoryRequest>{Placed::kByGroup, &v1::GetHistoryRequest::group});
}

grpc::ServerUnaryReactor* GroupService::GetPresence(grpc::CallbackServerContext* context,
                                                    const Raw* request, Raw* response) {
  return Unary(context, kScopeRead, request, response, &GroupService::DoGetPresence,
               "/groupsvc.v1.ChannelLayer/GetPresence",
               Placement<v1::GetPresenceRequest>{Placed::kByGroup, &v1::GetPresenceRequest::group});
}

grpc::ServerUnaryReactor* GroupService::Stats(grpc::CallbackServerContext* context,
                                              const Raw* request, Raw* response) {
  return Everywhere(context, kScopeRead, "/groupsvc.v1.ChannelLayer/Stats", request, response,
                    &GroupService::DoStats, &MergeStats);
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
  // Forwarded here if placed elsewhere: this shard owns the group.
  if (attach_options_.shards != nullptr && chat::ValidateChannelName(request.channel()).ok()) {
    if (absl::Status s = attach_options_.shards->CheckMember(request.channel()); !s.ok()) return s;
  }
  return ApplyGroupAdd(*registry_, request);
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
  response->set_offset(report->offset);
  return absl::OkStatus();
}

absl::Status GroupService::DoGetHistory(const Caller& caller, const v1::GetHistoryRequest& request,
                                        v1::GetHistoryResponse* response) {
  absl::StatusOr<HistoryPage> page = registry_->GetHistory(request.group(), QueryOf(request));
  if (!page.ok()) return page.status();
  response->set_epoch(page->epoch);
  response->set_recovered(page->recovered);
  response->set_latest_offset(page->latest);
  for (const HistoryEntry& entry : page->events) {
    v1::HistoryEvent* out = response->add_events();
    out->set_offset(entry.offset);
    absl::StatusOr<google::protobuf::Struct> fields = StructFromEvent(*entry.event);
    if (!fields.ok()) return fields.status();
    *out->mutable_event() = *std::move(fields);
    *out->mutable_time() = ToProto(entry.time);
  }
  return absl::OkStatus();
}

absl::Status GroupService::DoGetPresence(const Caller& caller,
                                         const v1::GetPresenceRequest& request,
                                         v1::GetPresenceResponse* response) {
  return FillPresence(*registry_, request.group(), response);
}

absl::Status GroupService::DoFlush(const Caller& caller, const v1::FlushRequest& request,
                                   v1::FlushResponse* response) {
  registry_->Flush();
  return absl::OkStatus();
}

absl::Status GroupService::DoListGroups(const Caller& caller, const v1::ListGroupsRequest& request,
                                        v1::ListGroupsResponse* response) {
  GroupPage page =
      registry_->ListGroups(request.name_prefix(), PageSize(request), request.page_token());
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
