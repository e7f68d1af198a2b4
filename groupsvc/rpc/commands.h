// ApplyCommand: one Attach-stream command (group_add, group_discard, send,
// group_send, and the history and presence queries) applied to a
// GroupRegistry and answered with its Ack.
//
// This is the whole of what an edge's command can do to the registry, kept
// apart from the gRPC stream (AttachStream) so that it can be unit-tested and
// fuzzed without a stream.
//
//   v1::Ack ack = ApplyCommand(registry, command);
//
// Thread-safety: as thread-safe as GroupRegistry (it is); it keeps no state of
// its own. Deliveries it causes reach the edges' EdgeSinks from the calling
// thread, with no registry lock held.
// Lifetime: nothing kept; the registry outlives the call.
#ifndef CHAT_GROUPSVC_RPC_COMMANDS_H_
#define CHAT_GROUPSVC_RPC_COMMANDS_H_

#include <memory>

#include "absl/time/time.h"
#include "groupsvc/registry/group_registry.h"
#include "groupsvc/shards/shard_map.h"
#include "groupsvc/v1/layer.pb.h"

namespace groupsvc {

// Never fails: a refused command is an Ack with a non-zero code and the
// reason in its message. The Ack carries the command's request_id. `quota`,
// if set, is the sending edge's (see GroupRegistry::Send). With `shards`, a
// command for a group or channel placed on another shard is refused with
// FAILED_PRECONDITION (the edge's shard list differs from groupsvc's).
// `edge_id`: the sending edge's, which must own a user_connect's channel.
v1::Ack ApplyCommand(GroupRegistry& registry, const v1::Command& command,
                     const std::shared_ptr<QueueQuota>& quota = nullptr,
                     const ShardMap* shards = nullptr, absl::string_view edge_id = "");

// A Disconnect's or RemoveFromGroup's close, checked: INVALID_ARGUMENT for a
// code outside 4000..4999 or a reason over 123 bytes; 0 and "" get defaults.
absl::StatusOr<UserClose> CloseOf(std::string user_id, std::string group, uint32_t code,
                                  std::string reason);

// What the stream and the unary API share: a group_add with its user, a
// history request as the registry's query, a presence snapshot as its answer.
absl::Status ApplyGroupAdd(GroupRegistry& registry, const v1::GroupAddRequest& request);
HistoryQuery QueryOf(const v1::GetHistoryRequest& request);
google::protobuf::Timestamp ToProto(absl::Time t);
absl::Status FillPresence(GroupRegistry& registry, const std::string& group,
                          v1::GetPresenceResponse* response);
// The group's members (NOT_FOUND when it has none).
absl::Status FillGroup(GroupRegistry& registry, const std::string& name, v1::Group* response);

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_RPC_COMMANDS_H_
