// The HTML pages the edge serves, built into the binary: the lobby (type a
// room name) and the room page (the chat log, an input, the connection state,
// reconnect with capped exponential backoff and jitter).
//
//   std::string html = RoomPage(room_name);  // room_name is escaped, never trusted
#ifndef CHAT_EDGE_PAGES_H_
#define CHAT_EDGE_PAGES_H_

#include <string>

namespace edge {

std::string LobbyPage();
std::string RoomPage(const std::string& room_name);

// For text inside HTML elements and attribute values.
std::string HtmlEscape(const std::string& text);
// A JSON string literal safe inside <script>: no "</script>", no "<!--", no
// line separators that end a JS string.
std::string ScriptStringLiteral(const std::string& text);

}  // namespace edge

#endif  // CHAT_EDGE_PAGES_H_
