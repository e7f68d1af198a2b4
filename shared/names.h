// Group and channel names, with the rules of Django Channels' channel layer.
//
// A group name is 1..99 ASCII letters, digits, '-', '_' or '.'. A channel name
// is the same, optionally followed by one '!' and a local part of the same
// characters ("abc!" and "abc!x" are valid; "!x" and "a!b!c" are not). Unlike
// Channels' Python regex, a trailing newline or a Unicode letter is refused.
//
//   if (absl::Status s = ValidateGroupName(name); !s.ok()) return s;
//   absl::string_view owner = ChannelOwnerPrefix("specific.x7k2!abc");  // "x7k2!"
#ifndef CHAT_SHARED_NAMES_H_
#define CHAT_SHARED_NAMES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace chat {

inline constexpr size_t kMaxNameLength = 99;

// INVALID_ARGUMENT with the rule in the message, or OK.
absl::Status ValidateGroupName(absl::string_view name);
absl::Status ValidateChannelName(absl::string_view name);

// The owner key of a process-local channel: the part after the last '.'
// before '!', with the '!' ("websocket.x7k2!c1" and "specific.x7k2!9f" are
// both "x7k2!"; "edge-1!c1" is "edge-1!"), which names the process (an edge, a
// Python layer) that owns it; empty for a name without '!'. Channels' own
// new_channel(prefix) names are "<prefix>.<client>!<random>" with any prefix
// the caller picks, so the client part alone identifies the process.
absl::string_view ChannelOwnerPrefix(absl::string_view channel);

// `length` random characters of [a-z0-9]: the parts of names that tell
// processes apart (a channel prefix's client part, a history epoch, the
// suffix of a default edge id). Not a secret.
std::string RandomTag(size_t length);

// A signed-in user's id, name and room as groupsvc keeps them: at most this
// many bytes each (the edge clips longer ones at a character boundary).
inline constexpr size_t kMaxUserField = 256;

// RESOURCE_EXHAUSTED for a user at --max_connections_per_user: what groupsvc
// answers, and the edge without groupsvc, and what the HTTP 429 says. It
// carries the reason kUserCapReason (shared/reason.h; Ack.reason on the
// stream), which tells it from other RESOURCE_EXHAUSTED answers.
inline constexpr char kUserCapReason[] = "user_cap";
absl::Status UserCapReached(absl::string_view user_id, size_t connections, uint32_t cap);

}  // namespace chat

#endif  // CHAT_SHARED_NAMES_H_
