// Event: a Channels-style message (a `type` plus fields) as groupsvc keeps it:
// the whole JSON object as text, shared by every copy and never re-encoded.
//
//   EventPtr e = MakeEvent("chat.message", R"({"type":"chat.message","message":"hi"})");
//
// Threading: immutable once made, so any thread may read it. Lifetime: shared
// (EventPtr is a shared_ptr to const): every queued copy, history entry and
// write in flight holds the one event until the last lets go.
#ifndef CHAT_GROUPSVC_REGISTRY_EVENT_H_
#define CHAT_GROUPSVC_REGISTRY_EVENT_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace groupsvc {

struct Event {
  std::string type;
  std::string json;  // The whole event object, "type" included.
  size_t ByteSize() const { return type.size() + json.size(); }
};
using EventPtr = std::shared_ptr<const Event>;

inline EventPtr MakeEvent(std::string type, std::string json) {
  return std::make_shared<const Event>(Event{std::move(type), std::move(json)});
}

// Why a copy of an event was not delivered.
enum class DropReason { kChannelFull, kEdgeQueueFull, kExpired, kEdgeGone };
inline constexpr size_t kDropReasonCount = 4;

inline absl::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kChannelFull:
      return "channel_full";
    case DropReason::kEdgeQueueFull:
      return "edge_queue_full";
    case DropReason::kExpired:
      return "expired";
    case DropReason::kEdgeGone:
      return "edge_gone";
  }
  return "unknown";
}

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_EVENT_H_
