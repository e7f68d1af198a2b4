#include "shared/reason.h"

#include "absl/strings/cord.h"

namespace chat {
namespace {

constexpr char kReasonUrl[] = "type.chat/reason";

}  // namespace

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  status.SetPayload(kReasonUrl, absl::Cord(reason));
  return status;
}

std::string ReasonOf(const absl::Status& status) {
  auto reason = status.GetPayload(kReasonUrl);  // absl::optional on Debian's Abseil.
  return reason.has_value() ? std::string(*reason) : std::string();
}

}  // namespace chat
