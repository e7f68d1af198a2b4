// One log line per event, as key=value fields on stderr, e.g.
//   2026-11-26T12:00:00.123Z groupsvc edge_attached edge=edge-1 peer=ipv4:127.0.0.1:5
//
//   SetLogComponent("groupsvc");
//   LogEvent("edge_attached", {{"edge", id}, {"peer", peer}});
#ifndef CHAT_SHARED_LOG_H_
#define CHAT_SHARED_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace chat {

using LogField = std::pair<absl::string_view, absl::string_view>;

void SetLogComponent(absl::string_view component);
// Values with spaces, quotes or control characters are quoted and escaped.
void LogEvent(absl::string_view event, std::initializer_list<LogField> fields = {});
// The same, for fields assembled at run time.
void LogEvent(absl::string_view event,
              const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace chat

#endif  // CHAT_SHARED_LOG_H_
