// Group and channel names, with the rules of Django Channels' channel layer.
//
// A group name is 1..99 ASCII letters, digits, '-', '_' or '.'. A channel name
// is the same, optionally followed by one '!' and a local part of the same
// characters ("abc!" and "abc!x" are valid; "!x" and "a!b!c" are not). Unlike
// Channels' Python regex, a trailing newline or a Unicode letter is refused.
//
//   if (absl::Status s = ValidateGroupName(name); !s.ok()) return s;
//   absl::string_view owner = ChannelOwnerPrefix("edge-1!abc");  // "edge-1!"
#ifndef CHAT_SHARED_NAMES_H_
#define CHAT_SHARED_NAMES_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace chat {

inline constexpr size_t kMaxNameLength = 99;

// INVALID_ARGUMENT with the rule in the message, or OK.
absl::Status ValidateGroupName(absl::string_view name);
absl::Status ValidateChannelName(absl::string_view name);

// The part of a process-local channel name up to and including '!', which
// names the process (edge) that owns it; empty for a name without '!'.
absl::string_view ChannelOwnerPrefix(absl::string_view channel);

}  // namespace chat

#endif  // CHAT_SHARED_NAMES_H_
