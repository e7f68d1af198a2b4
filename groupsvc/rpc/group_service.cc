#include "groupsvc/rpc/group_service.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "groupsvc/registry/event_json.h"
#include "groupsvc/rpc/commands.h"
#include "groupsvc/rpc/wire.h"
#include "groupsvc/security/peer_identity.h"
#include "shared/grpc_status.h"
#include "shared/log.h"
#include "shared/names.h"

namespace groupsvc {
namespace {

// A Receive's answer: the event (none: an empty answer), as a Struct.
absl::Status FillReceive(const EventPtr& event, v1::ReceiveResponse* response) {
  if (event == nullptr) return absl::OkStatus();
  // Taken from its queue already: an event a Struct cannot hold (nested past
  // protobuf's limit) still reaches the caller, as its JSON.
  response->set_json(event->json);
  if (absl::StatusOr<google::protobuf::Struct> fields = StructFromEvent(*event); fields.ok()) {
    *response->mutable_event() = *std::move(fields);
  }
  return absl::OkStatus();
}

// One Receive that waits for an event: registered with the registry as a
// Receiver, with an alarm on the call's loop for its timeout, and with the
// call for its cancellation. Whichever of event, timeout or cancel comes
// first wins; the registry's CancelReceive decides, so the call is answered
// exactly once.
class ReceiveWait final : public Call, public Receiver {
 public:
  ReceiveWait(UnaryCall* call, GroupRegistry* registry, std::string channel)
      : Call(call->loop()),
        call_(std::static_pointer_cast<UnaryCall>(call->shared_from_this())),
        registry_(registry),
        channel_(std::move(channel)) {}

  void Start(absl::Time deadline) {
    std::shared_ptr<ReceiveWait> self = std::static_pointer_cast<ReceiveWait>(shared_from_this());
    {
      absl::MutexLock lock(&mu_);
      alarm_.Set(loop()->cq(), absl::ToChronoTime(deadline), timed_out_.Tag());
    }
    call_->OnCancel(
        [self] { self->GiveUp(absl::CancelledError("Receive cancelled by the client")); });
    absl::StatusOr<EventPtr> event = registry_->Receive(channel_, self);
    if (!event.ok()) {
      StopAlarm();
      call_->Reply(event.status());
    } else if (*event != nullptr) {
      OnEvent(*std::move(event));
    }
  }

  void OnEvent(EventPtr event) override {
    StopAlarm();
    v1::ReceiveResponse response;
    call_->Reply(FillReceive(event, &response), &response);
  }

  void OnComplete(Op*, bool ok) override {
    if (ok) GiveUp(absl::OkStatus());  // Nothing in time: an empty answer.
  }

 private:
  void StopAlarm() {
    absl::MutexLock lock(&mu_);
    alarm_.Cancel();
  }
  void GiveUp(const absl::Status& status) {
    if (!registry_->CancelReceive(channel_, this)) return;
    StopAlarm();
    v1::ReceiveResponse empty;
    call_->Reply(status, &empty);
  }

  const std::shared_ptr<UnaryCall> call_;
  GroupRegistry* const registry_;
  const std::string channel_;
  Op timed_out_{this};
  absl::Mutex mu_;
  grpc::Alarm alarm_ ABSL_GUARDED_BY(mu_);
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
  into->set_users(into->users() + other.users());
  into->set_user_connections(into->user_connections() + other.user_connections());
}

}  // namespace

template <class RequestFn>
void GroupService::AddMethod(RequestFn request, void (GroupService::*handle)(UnaryCall*)) {
  auto method = std::make_unique<UnaryMethod>();
  method->request = [this, request](grpc::ServerContext* context, grpc::ByteBuffer* raw,
                                    RawResponder* responder, grpc::ServerCompletionQueue* cq,
                                    void* tag) {
    (service_.*request)(context, raw, responder, cq, cq, tag);
  };
  method->handle = [this, handle](UnaryCall* call) { (this->*handle)(call); };
  methods_.push_back(std::move(method));
}

GroupService::GroupService(GroupRegistry* registry, AttachOptions attach_options,
                           const chat::Clock* clock, ApiGuard* guard,
                           bool require_client_certificate, bool api_needs_tls,
                           Forwarder* forwarder)
    : registry_(registry),
      attach_options_(attach_options),
      guard_(guard),
      api_needs_tls_(api_needs_tls),
      forwarder_(forwarder) {
  attach_env_.registry = registry;
  attach_env_.streams = &streams_;
  attach_env_.options = attach_options;
  attach_env_.clock = clock;
  attach_env_.guard = guard;
  attach_env_.require_client_certificate = require_client_certificate;
  attach_env_.api_needs_tls = api_needs_tls;
  attach_env_.request = [this](grpc::ServerContext* context, RawStream* stream,
                               grpc::ServerCompletionQueue* cq,
                               void* tag) { service_.RequestAttach(context, stream, cq, cq, tag); };
  using S = internal::AsyncChannelLayer;
  AddMethod(&S::RequestSend, &GroupService::HandleSend);
  AddMethod(&S::RequestReceive, &GroupService::HandleReceive);
  AddMethod(&S::RequestNewChannel, &GroupService::HandleNewChannel);
  AddMethod(&S::RequestGroupAdd, &GroupService::HandleGroupAdd);
  AddMethod(&S::RequestGroupDiscard, &GroupService::HandleGroupDiscard);
  AddMethod(&S::RequestGroupSend, &GroupService::HandleGroupSend);
  AddMethod(&S::RequestFlush, &GroupService::HandleFlush);
  AddMethod(&S::RequestListGroups, &GroupService::HandleListGroups);
  AddMethod(&S::RequestGetGroup, &GroupService::HandleGetGroup);
  AddMethod(&S::RequestGetHistory, &GroupService::HandleGetHistory);
  AddMethod(&S::RequestGetPresence, &GroupService::HandleGetPresence);
  AddMethod(&S::RequestStats, &GroupService::HandleStats);
  AddMethod(&S::RequestDisconnect, &GroupService::HandleDisconnect);
  AddMethod(&S::RequestRemoveFromGroup, &GroupService::HandleRemoveFromGroup);
  AddMethod(&S::RequestGetUser, &GroupService::HandleGetUser);
}

void GroupService::Listen(CompletionLoop* loop) {
  AttachStream::Listen(loop, &attach_env_);
  for (const auto& method : methods_) UnaryCall::Listen(loop, method.get());
}

absl::Status GroupService::CheckPort(const grpc::ServerContextBase& context) const {
  if (!api_needs_tls_ || OverTls(context)) return absl::OkStatus();
  return absl::UnimplementedError(kHealthPortOnly);
}

absl::StatusOr<std::optional<uint32_t>> GroupService::Elsewhere(
    const grpc::ServerContextBase& context, Placed by, absl::string_view name) const {
  const ShardMap* shards = attach_options_.shards;
  if (forwarder_ == nullptr || shards == nullptr || by == Placed::kHere) return std::nullopt;
  if (by == Placed::kByUser) {
    if (name.empty()) return std::nullopt;  // Refused here.
    const uint32_t owner = shards->UserOwner(name);
    if (owner == shards->self()) return std::nullopt;
    if (Forwarder::IsForwarded(context)) {
      if (absl::Status s = shards->CheckUser(name); !s.ok()) return s;
      return std::nullopt;
    }
    return owner;
  }
  // An invalid name is refused here, with the rule it breaks.
  if (by == Placed::kByGroup ? !chat::ValidateGroupName(name).ok()
                             : !chat::ValidateChannelName(name).ok()) {
    return std::nullopt;
  }
  const uint32_t owner =
      by == Placed::kByGroup ? shards->GroupOwner(name) : shards->ChannelOwner(name);
  if (owner == shards->self()) return std::nullopt;
  if (Forwarder::IsForwarded(context)) {
    // Answered here when this shard's map places it here by either count.
    absl::Status s = by == Placed::kByGroup ? shards->CheckGroup(name) : shards->CheckChannel(name);
    if (!s.ok()) return s;
    return std::nullopt;
  }
  return owner;
}

void GroupService::Drain(absl::Duration grace) { streams_.DrainAll(grace); }

template <class Request, class Response>
void GroupService::Unary(UnaryCall* call, Scope scope,
                         absl::Status (GroupService::*handler)(const Caller&, const Request&,
                                                               Response*),
                         const char* method, Placement<Request> placement) {
  if (absl::Status s = CheckPort(call->context()); !s.ok()) return call->Reply(s);
  absl::StatusOr<Caller> caller = guard_->Authorize(call->context(), scope);
  if (!caller.ok()) return call->Reply(caller.status());
  Request request;
  if (absl::Status s = ParseWire(call->request(), &request); !s.ok()) return call->Reply(s);
  if (placement.key != nullptr) {
    absl::StatusOr<std::optional<uint32_t>> owner =
        Elsewhere(call->context(), placement.by, (request.*placement.key)());
    if (!owner.ok()) return call->Reply(owner.status());
    if (owner->has_value()) return forwarder_->Forward(**owner, method, call);
  }
  Response response;
  absl::Status status = (this->*handler)(*caller, request, &response);
  call->Reply(status, &response);
}

template <class Request, class Response>
void GroupService::Everywhere(UnaryCall* call, Scope scope, const char* method,
                              absl::Status (GroupService::*handler)(const Caller&, const Request&,
                                                                    Response*),
                              void (*merge)(const Request&, const Response& other,
                                            Response* into)) {
  if (forwarder_ == nullptr || Forwarder::IsForwarded(call->context())) {
    return Unary(call, scope, handler);
  }
  if (absl::Status s = CheckPort(call->context()); !s.ok()) return call->Reply(s);
  absl::StatusOr<Caller> caller = guard_->Authorize(call->context(), scope);
  if (!caller.ok()) return call->Reply(caller.status());
  auto request = std::make_shared<Request>();
  if (absl::Status s = ParseWire(call->request(), request.get()); !s.ok()) return call->Reply(s);
  auto mine = std::make_shared<Response>();
  if (absl::Status s = (this->*handler)(*caller, *request, mine.get()); !s.ok()) {
    return call->Reply(s);
  }
  std::shared_ptr<UnaryCall> held = std::static_pointer_cast<UnaryCall>(call->shared_from_this());
  forwarder_->AskOthers(method, call, [held, request, mine, merge](Forwarder::Answers answers) {
    if (!answers.ok()) return held->Reply(answers.status());
    for (const grpc::ByteBuffer& raw : *answers) {
      if (raw.Length() == 0) continue;  // This shard's slot.
      Response other;
      if (absl::Status s = ParseWire(raw, &other); !s.ok()) return held->Reply(s);
      merge(*request, other, mine.get());
    }
    merge(*request, Response(), mine.get());  // The final pass: order and page.
    held->Reply(absl::OkStatus(), mine.get());
  });
}

void GroupService::HandleSend(UnaryCall* call) {
  Unary(call, kScopeSend, &GroupService::DoSend, "/groupsvc.v1.ChannelLayer/Send",
        Placement<v1::SendRequest>{Placed::kByChannel, &v1::SendRequest::channel});
}

void GroupService::HandleReceive(UnaryCall* call) {
  if (absl::Status s = CheckPort(call->context()); !s.ok()) return call->Reply(s);
  if (absl::StatusOr<Caller> caller = guard_->Authorize(call->context(), kScopeAdmin);
      !caller.ok()) {
    return call->Reply(caller.status());
  }
  v1::ReceiveRequest request;
  if (absl::Status s = ParseWire(call->request(), &request); !s.ok()) return call->Reply(s);
  if (!request.this_shard()) {
    absl::StatusOr<std::optional<uint32_t>> owner =
        Elsewhere(call->context(), Placed::kByChannel, request.channel());
    if (!owner.ok()) return call->Reply(owner.status());
    if (owner->has_value()) {
      return forwarder_->Forward(**owner, "/groupsvc.v1.ChannelLayer/Receive", call);
    }
  }
  absl::Duration wait =
      absl::Seconds(request.timeout().seconds()) + absl::Nanoseconds(request.timeout().nanos());
  if (wait < absl::ZeroDuration() || wait > kMaxReceiveWait) {
    return call->Reply(absl::InvalidArgumentError(
        absl::StrCat("timeout must be between 0 and ", absl::FormatDuration(kMaxReceiveWait))));
  }
  if (wait == absl::ZeroDuration()) {
    absl::StatusOr<EventPtr> event = registry_->Receive(request.channel());
    if (!event.ok()) return call->Reply(event.status());
    v1::ReceiveResponse response;
    return call->Reply(FillReceive(*event, &response), &response);
  }
  // A call deadline that comes first is gRPC's to enforce: the call is
  // cancelled and the client sees DEADLINE_EXCEEDED, never an empty answer
  // racing it.
  std::make_shared<ReceiveWait>(call, registry_, request.channel())->Start(absl::Now() + wait);
}

void GroupService::HandleNewChannel(UnaryCall* call) {
  Unary(call, kScopeAdmin, &GroupService::DoNewChannel);
}

void GroupService::HandleGroupAdd(UnaryCall* call) {
  Unary(call, kScopeAdmin, &GroupService::DoGroupAdd, "/groupsvc.v1.ChannelLayer/GroupAdd",
        Placement<v1::GroupAddRequest>{Placed::kByGroup, &v1::GroupAddRequest::group});
}

void GroupService::HandleGroupDiscard(UnaryCall* call) {
  Unary(call, kScopeAdmin, &GroupService::DoGroupDiscard, "/groupsvc.v1.ChannelLayer/GroupDiscard",
        Placement<v1::GroupDiscardRequest>{Placed::kByGroup, &v1::GroupDiscardRequest::group});
}

void GroupService::HandleGroupSend(UnaryCall* call) {
  Unary(call, kScopeSend, &GroupService::DoGroupSend, "/groupsvc.v1.ChannelLayer/GroupSend",
        Placement<v1::GroupSendRequest>{Placed::kByGroup, &v1::GroupSendRequest::group});
}

void GroupService::HandleFlush(UnaryCall* call) {
  Everywhere(
      call, kScopeAdmin, "/groupsvc.v1.ChannelLayer/Flush", &GroupService::DoFlush,
      +[](const v1::FlushRequest&, const v1::FlushResponse&, v1::FlushResponse*) {});
}

void GroupService::HandleListGroups(UnaryCall* call) {
  Everywhere(call, kScopeRead, "/groupsvc.v1.ChannelLayer/ListGroups", &GroupService::DoListGroups,
             &MergeGroupPages);
}

void GroupService::HandleGetGroup(UnaryCall* call) {
  Unary(call, kScopeRead, &GroupService::DoGetGroup, "/groupsvc.v1.ChannelLayer/GetGroup",
        Placement<v1::GetGroupRequest>{Placed::kByGroup, &v1::GetGroupRequest::name});
}

void GroupService::HandleGetHistory(UnaryCall* call) {
  Unary(call, kScopeRead, &GroupService::DoGetHistory, "/groupsvc.v1.ChannelLayer/GetHistory",
        Placement<v1::GetHistoryRequest>{Placed::kByGroup, &v1::GetHistoryRequest::group});
}

void GroupService::HandleGetPresence(UnaryCall* call) {
  Unary(call, kScopeRead, &GroupService::DoGetPresence, "/groupsvc.v1.ChannelLayer/GetPresence",
        Placement<v1::GetPresenceRequest>{Placed::kByGroup, &v1::GetPresenceRequest::group});
}

void GroupService::HandleStats(UnaryCall* call) {
  Everywhere(call, kScopeRead, "/groupsvc.v1.ChannelLayer/Stats", &GroupService::DoStats,
             &MergeStats);
}

void GroupService::HandleDisconnect(UnaryCall* call) {
  Unary(call, kScopeAdmin, &GroupService::DoDisconnect, "/groupsvc.v1.ChannelLayer/Disconnect",
        Placement<v1::DisconnectRequest>{Placed::kByUser, &v1::DisconnectRequest::user_id});
}

void GroupService::HandleRemoveFromGroup(UnaryCall* call) {
  Unary(
      call, kScopeAdmin, &GroupService::DoRemoveFromGroup,
      "/groupsvc.v1.ChannelLayer/RemoveFromGroup",
      Placement<v1::RemoveFromGroupRequest>{Placed::kByUser, &v1::RemoveFromGroupRequest::user_id});
}

void GroupService::HandleGetUser(UnaryCall* call) {
  Unary(call, kScopeAdmin, &GroupService::DoGetUser, "/groupsvc.v1.ChannelLayer/GetUser",
        Placement<v1::GetUserRequest>{Placed::kByUser, &v1::GetUserRequest::user_id});
}

// ------------------------------------------------------------ Typed handlers

absl::Status GroupService::DoDisconnect(const Caller& caller, const v1::DisconnectRequest& request,
                                        v1::DisconnectResponse* response) {
  absl::StatusOr<UserClose> close =
      CloseOf(request.user_id(), "", request.code(), request.reason());
  if (!close.ok()) return close.status();
  response->set_connections(registry_->CloseUser(*close));
  chat::LogEvent("user_disconnected", {{"user", close->user_id},
                                       {"code", absl::StrCat(close->code)},
                                       {"connections", absl::StrCat(response->connections())},
                                       {"by", caller.name}});
  return absl::OkStatus();
}

absl::Status GroupService::DoRemoveFromGroup(const Caller& caller,
                                             const v1::RemoveFromGroupRequest& request,
                                             v1::RemoveFromGroupResponse* response) {
  if (absl::Status s = chat::ValidateGroupName(request.group()); !s.ok()) return s;
  absl::StatusOr<UserClose> close =
      CloseOf(request.user_id(), request.group(), request.code(), request.reason());
  if (!close.ok()) return close.status();
  response->set_edges(registry_->CloseUser(*close));
  chat::LogEvent("user_removed", {{"user", close->user_id},
                                  {"group", close->group},
                                  {"code", absl::StrCat(close->code)},
                                  {"edges", absl::StrCat(response->edges())},
                                  {"by", caller.name}});
  return absl::OkStatus();
}

absl::Status GroupService::DoGetUser(const Caller& caller, const v1::GetUserRequest& request,
                                     v1::GetUserResponse* response) {
  if (request.user_id().empty()) return absl::InvalidArgumentError("user_id is required");
  response->set_id(request.user_id());
  for (const UserConnection& c : registry_->GetUser(request.user_id())) {
    response->set_name(c.name);  // Oldest first: the latest's name stays.
    v1::UserConnection* out = response->add_connections();
    out->set_channel(c.channel);
    out->set_edge_id(c.edge_id);
    out->set_room(c.room);
    *out->mutable_since() = ToProto(c.since);
  }
  return absl::OkStatus();
}

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
  // Forwarded here if placed elsewhere: this shard owns the group. A queued
  // channel of another shard's is a member too: its copies wait here
  // (ReceiveRequest.this_shard).
  return ApplyGroupAdd(*registry_, request);
}

absl::Status GroupService::DoGroupDiscard(const Caller& caller,
                                          const v1::GroupDiscardRequest& request,
                                          v1::GroupDiscardResponse* response) {
  return registry_->GroupDiscard(request.group(), request.channel(), request.leave_now());
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
  return FillGroup(*registry_, request.name(), response);
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
  response->set_users(s.users);
  response->set_user_connections(s.user_connections);
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    (*response->mutable_drops())[std::string(DropReasonName(static_cast<DropReason>(i)))] =
        s.drops[i];
  }
  return absl::OkStatus();
}

}  // namespace groupsvc
