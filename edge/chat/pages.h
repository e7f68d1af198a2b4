// The HTML pages the edge serves, built into the binary: the lobby (type a
// room name) and the room page (the chat log, an input, the connection state,
// reconnect with capped exponential backoff and jitter).
//
//   std::string html = RoomPage(room_name);  // room_name is escaped, never trusted
#ifndef CHAT_EDGE_CHAT_PAGES_H_
#define CHAT_EDGE_CHAT_PAGES_H_

#include <optional>
#include <string>

#include "edge/net/page.h"

namespace edge {

// The tutorial's routes: "/" redirects to the lobby "/chat/", "/chat/<room>/"
// is a room's page (any one path segment; the WebSocket checks the name).
std::optional<Page> ChatPages(const std::string& path);

std::string LobbyPage();
std::string RoomPage(const std::string& room_name);

// For text inside HTML elements and attribute values.
std::string HtmlEscape(const std::string& text);
// A JSON string literal safe inside <script>: no "</script>", no "<!--", no
// line separators that end a JS string.
std::string ScriptStringLiteral(const std::string& text);

}  // namespace edge

#endif  // CHAT_EDGE_CHAT_PAGES_H_
