#include "groupsvc/rpc/commands.h"

#include <google/protobuf/util/time_util.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "shared/names.h"
#include "shared/reason.h"

namespace groupsvc {
namespace {

EventPtr FromWire(const v1::WireEvent& wire) { return MakeEvent(wire.type(), wire.json()); }

v1::Ack AckFor(uint64_t request_id, const absl::Status& status) {
  v1::Ack ack;
  ack.set_request_id(request_id);
  ack.set_code(static_cast<int>(status.code()));
  ack.set_message(std::string(status.message()));
  ack.set_reason(chat::ReasonOf(status));
  return ack;
}

absl::Status Check(const ShardMap& shards, const std::string& name, bool group) {
  // An invalid name is the registry's to refuse, with the rule it breaks.
  if (group) {
    return chat::ValidateGroupName(name).ok() ? shards.CheckGroup(name) : absl::OkStatus();
  }
  return chat::ValidateChannelName(name).ok() ? shards.CheckChannel(name) : absl::OkStatus();
}

// FAILED_PRECONDITION for a valid name placed on another shard.
absl::Status Misplaced(const ShardMap* shards, const v1::Command& command) {
  if (shards == nullptr || !shards->sharded()) return absl::OkStatus();
  switch (command.op_case()) {
    case v1::Command::kGroupAdd:
      return Check(*shards, command.group_add().group(), /*group=*/true);
    case v1::Command::kGroupDiscard:
      return Check(*shards, command.group_discard().group(), true);
    case v1::Command::kGroupSend:
      return Check(*shards, command.group_send().group(), true);
    case v1::Command::kSend:
      return Check(*shards, command.send().channel(), false);
    case v1::Command::kHistory:
      return Check(*shards, command.history().group(), true);
    case v1::Command::kPresence:
      return Check(*shards, command.presence().group(), true);
    case v1::Command::kGroup:
      return Check(*shards, command.group().name(), true);
    case v1::Command::kUserConnect:
      return shards->CheckUser(command.user_connect().user().id());
    case v1::Command::kUserDisconnect:
      return shards->CheckUser(command.user_disconnect().user_id());
    case v1::Command::OP_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

// WebSocket close codes for operators' closes (docs/security.md).
constexpr uint32_t kDisconnectedCode = 4010;
constexpr uint32_t kRemovedCode = 4011;
// A close frame's payload is at most 125 bytes, 2 of them the code.
constexpr size_t kMaxCloseReason = 123;

}  // namespace

absl::StatusOr<UserClose> CloseOf(std::string user_id, std::string group, uint32_t code,
                                  std::string reason) {
  if (user_id.empty()) return absl::InvalidArgumentError("user_id is required");
  if (code == 0) code = group.empty() ? kDisconnectedCode : kRemovedCode;
  if (code < 4000 || code > 4999) {
    return absl::InvalidArgumentError(absl::StrCat(
        "code must be a WebSocket close code an application may choose, 4000 to 4999; got ", code));
  }
  if (reason.size() > kMaxCloseReason) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reason is at most ", kMaxCloseReason, " bytes (a close frame's); got ", reason.size()));
  }
  if (reason.empty()) {
    reason = group.empty() ? "disconnected by an operator" : "removed from the room by an operator";
  }
  return UserClose{std::move(user_id), std::move(group), code, std::move(reason)};
}

absl::Status ApplyGroupAdd(GroupRegistry& registry, const v1::GroupAddRequest& request) {
  PresenceUser user{request.user().id(), request.user().name()};
  return registry.GroupAdd(request.group(), request.channel(), request.has_user() ? &user : nullptr,
                           request.watch_presence());
}

HistoryQuery QueryOf(const v1::GetHistoryRequest& request) {
  return HistoryQuery{request.since_offset(), request.epoch(), request.page_size(),
                      request.latest(), request.max_bytes()};
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

absl::Status FillPresence(GroupRegistry& registry, const std::string& group,
                          v1::GetPresenceResponse* response) {
  absl::StatusOr<PresenceSnapshot> snapshot = registry.GetPresence(group);
  if (!snapshot.ok()) return snapshot.status();
  for (const PresenceMember& m : snapshot->members) {
    v1::PresenceMember* out = response->add_members();
    out->set_id(m.user.id);
    out->set_name(m.user.name);
    out->set_connections(m.connections);
    *out->mutable_since() = ToProto(m.since);
  }
  response->set_anonymous_connections(snapshot->anonymous_connections);
  return absl::OkStatus();
}

absl::Status FillGroup(GroupRegistry& registry, const std::string& name, v1::Group* response) {
  absl::StatusOr<GroupInfo> info = registry.GetGroup(name);
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

v1::Ack ApplyCommand(GroupRegistry& registry, const v1::Command& command,
                     const std::shared_ptr<QueueQuota>& quota, const ShardMap* shards,
                     absl::string_view edge_id) {
  const uint64_t id = command.request_id();
  if (absl::Status s = Misplaced(shards, command); !s.ok()) return AckFor(id, s);
  switch (command.op_case()) {
    case v1::Command::kGroupAdd:
      return AckFor(id, ApplyGroupAdd(registry, command.group_add()));
    case v1::Command::kGroupDiscard:
      return AckFor(id, registry.GroupDiscard(command.group_discard().group(),
                                              command.group_discard().channel(),
                                              command.group_discard().leave_now()));
    case v1::Command::kSend:
      return AckFor(
          id, registry.Send(command.send().channel(), FromWire(command.send().event()), quota));
    case v1::Command::kGroupSend: {
      absl::StatusOr<SendReport> report = registry.GroupSend(
          command.group_send().group(), FromWire(command.group_send().event()), quota);
      v1::Ack ack = AckFor(id, report.status());
      if (report.ok()) {
        ack.set_delivered(report->delivered);
        ack.set_dropped(report->dropped);
        ack.set_unsettled(report->unsettled);
        ack.set_offset(report->offset);
      }
      return ack;
    }
    case v1::Command::kHistory: {
      const v1::GetHistoryRequest& request = command.history();
      absl::StatusOr<HistoryPage> page = registry.GetHistory(request.group(), QueryOf(request));
      v1::Ack ack = AckFor(id, page.status());
      if (!page.ok()) return ack;
      v1::HistoryReply* reply = ack.mutable_history();
      reply->set_epoch(page->epoch);
      reply->set_recovered(page->recovered);
      reply->set_latest_offset(page->latest);
      for (const HistoryEntry& entry : page->events) {
        v1::Delivery* d = reply->add_events();
        d->mutable_event()->set_type(entry.event->type);
        d->mutable_event()->set_json(entry.event->json);
        d->set_group(request.group());
        d->set_offset(entry.offset);
      }
      return ack;
    }
    case v1::Command::kPresence: {
      v1::Ack ack;
      absl::Status s = FillPresence(registry, command.presence().group(), ack.mutable_presence());
      if (!s.ok()) return AckFor(id, s);
      ack.set_request_id(id);
      return ack;
    }
    case v1::Command::kUserConnect: {
      const v1::UserConnectRequest& request = command.user_connect();
      uint32_t count = 0;
      // An edge's time of opening; a Timestamp out of its range counts as none.
      using google::protobuf::util::TimeUtil;
      const google::protobuf::Timestamp& opened = request.since();
      const bool valid = request.has_since() &&
                         opened.seconds() >= TimeUtil::kTimestampMinSeconds &&
                         opened.seconds() <= TimeUtil::kTimestampMaxSeconds &&
                         opened.nanos() >= 0 && opened.nanos() < 1'000'000'000;
      const absl::Time since =
          valid ? absl::FromUnixSeconds(opened.seconds()) + absl::Nanoseconds(opened.nanos())
                : absl::InfiniteFuture();
      absl::Status s = registry.ConnectUser(
          UserConnection{request.user().id(), request.user().name(), request.channel(),
                         std::string(edge_id), request.room(), since},
          request.max_connections(), &count);
      v1::Ack ack = AckFor(id, s);
      ack.set_user_connections(count);
      return ack;
    }
    case v1::Command::kGroup: {
      v1::Ack ack;
      absl::Status s = FillGroup(registry, command.group().name(), ack.mutable_group());
      if (!s.ok()) return AckFor(id, s);
      ack.set_request_id(id);
      return ack;
    }
    case v1::Command::kUserDisconnect:
      return AckFor(id, registry.DisconnectUser(command.user_disconnect().user_id(),
                                                command.user_disconnect().channel(), edge_id));
    case v1::Command::OP_NOT_SET:
      break;
  }
  return AckFor(
      id, absl::InvalidArgumentError(
              "command names no operation (group_add, group_discard, group_send, send, history, "
              "presence, group, user_connect, user_disconnect)"));
}

}  // namespace groupsvc
