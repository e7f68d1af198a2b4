// A machine-readable reason carried on an absl::Status (as a payload), for the
// code that counts or branches on why something failed, so that nothing reads
// a message's text: the text is for people, and may change.
//
//   return chat::WithReason(absl::ResourceExhaustedError("too many ..."), kPerAddress);
//   metrics->refused(chat::ReasonOf(status)).Increment();
#ifndef CHAT_SHARED_REASON_H_
#define CHAT_SHARED_REASON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace chat {

// `status` with `reason` (a short constant of its producer, e.g.
// "max_per_address") attached.
absl::Status WithReason(absl::Status status, absl::string_view reason);
// The reason attached by WithReason; empty if none.
std::string ReasonOf(const absl::Status& status);

}  // namespace chat

#endif  // CHAT_SHARED_REASON_H_
