// Conversion between the events of the unary RPCs (google.protobuf.Struct, so
// that grpcurl users write plain JSON) and groupsvc's Event (JSON text).
//
//   absl::StatusOr<EventPtr> event = EventFromStruct(request.event());
//
// Threading: pure functions of their arguments; any thread. Lifetime: the
// EventPtr returned is shared (event.h).
#ifndef CHAT_GROUPSVC_REGISTRY_EVENT_JSON_H_
#define CHAT_GROUPSVC_REGISTRY_EVENT_JSON_H_

#include <google/protobuf/struct.pb.h>

#include "absl/status/statusor.h"
#include "groupsvc/registry/event.h"

namespace groupsvc {

// Levels of objects and arrays an event may nest ({"type": "x"} is one).
// protobuf's JSON printer has a limit of its own, which it reports in its own
// words; this one is checked first, and is below it.
inline constexpr int kMaxEventDepth = 32;

// INVALID_ARGUMENT when "type" is missing or not a non-empty string, or the
// event nests deeper than kMaxEventDepth.
absl::StatusOr<EventPtr> EventFromStruct(const google::protobuf::Struct& fields);
absl::StatusOr<google::protobuf::Struct> StructFromEvent(const Event& event);

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_EVENT_JSON_H_
