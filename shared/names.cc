#include "shared/names.h"

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "shared/reason.h"

namespace chat {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

bool AllNameChars(absl::string_view s) {
  for (char c : s) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

}  // namespace

absl::Status ValidateGroupName(absl::string_view name) {
  if (!name.empty() && name.size() <= kMaxNameLength && AllNameChars(name)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "Group name must be 1 to ", kMaxNameLength,
      " characters, only ASCII letters, digits, hyphens, underscores or periods; got \"",
      absl::CHexEscape(name.substr(0, 120)), "\""));
}

absl::Status ValidateChannelName(absl::string_view name) {
  if (!name.empty() && name.size() <= kMaxNameLength) {
    size_t bang = name.find('!');
    absl::string_view head = name.substr(0, bang);
    absl::string_view local =
        bang == absl::string_view::npos ? absl::string_view() : name.substr(bang + 1);
    if (!head.empty() && AllNameChars(head) && AllNameChars(local)) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "Channel name must be 1 to ", kMaxNameLength,
      " characters, only ASCII letters, digits, hyphens, underscores or periods, optionally "
      "followed by one '!' and a local part of the same characters; got \"",
      absl::CHexEscape(name.substr(0, 120)), "\""));
}

absl::string_view ChannelOwnerPrefix(absl::string_view channel) {
  const size_t bang = channel.find('!');
  if (bang == absl::string_view::npos) return absl::string_view();
  const size_t dot = channel.substr(0, bang).rfind('.');
  const size_t start = dot == absl::string_view::npos ? 0 : dot + 1;
  return channel.substr(start, bang + 1 - start);
}

absl::Status UserCapReached(absl::string_view user_id, size_t connections, uint32_t cap) {
  return WithReason(
      absl::ResourceExhaustedError(absl::StrCat(
          "user \"", user_id, "\" already has ", connections, " connection",
          connections == 1 ? "" : "s",
          ", the most one user may have (--max_connections_per_user=", cap, "); close one first")),
      kUserCapReason);
}

std::string RandomTag(size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  absl::BitGen gen;
  std::string tag(length, 'a');
  for (char& c : tag) c = kAlphabet[absl::Uniform<size_t>(gen, 0, sizeof(kAlphabet) - 1)];
  return tag;
}

}  // namespace chat
