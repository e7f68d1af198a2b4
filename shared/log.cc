#include "shared/log.h"

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace chat {
namespace {

std::string& Component() {
  static std::string* component = new std::string("chat");
  return *component;
}

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c >= 0x7f) return true;
  }
  return false;
}

}  // namespace

void SetLogComponent(absl::string_view component) { Component() = std::string(component); }

namespace {

template <class Fields>
void Write(absl::string_view event, const Fields& fields) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
                   Component(), " ", event);
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&line, " ", key, "=");
    if (NeedsQuotes(value)) {
      absl::StrAppend(&line, "\"", absl::CEscape(value), "\"");
    } else {
      absl::StrAppend(&line, value);
    }
  }
  line.push_back('\n');
  // One write per line, so that lines from several threads do not interleave.
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

}  // namespace

void LogEvent(absl::string_view event, std::initializer_list<LogField> fields) {
  Write(event, fields);
}

void LogEvent(absl::string_view event,
              const std::vector<std::pair<std::string, std::string>>& fields) {
  Write(event, fields);
}

}  // namespace chat
