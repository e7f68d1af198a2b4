// Conversion between the events of the unary RPCs (google.protobuf.Struct, so
// that grpcurl users write plain JSON) and groupsvc's Event (JSON text).
//
//   absl::StatusOr<EventPtr> event = EventFromStruct(request.event());
#ifndef CHAT_GROUPSVC_EVENT_JSON_H_
#define CHAT_GROUPSVC_EVENT_JSON_H_

#include <google/protobuf/struct.pb.h>

#include "absl/status/statusor.h"
#include "groupsvc/event.h"

namespace groupsvc {

// INVALID_ARGUMENT when "type" is missing or not a non-empty string.
absl::StatusOr<EventPtr> EventFromStruct(const google::protobuf::Struct& fields);
absl::StatusOr<google::protobuf::Struct> StructFromEvent(const Event& event);

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_EVENT_JSON_H_
