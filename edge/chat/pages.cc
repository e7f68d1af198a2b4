#include "edge/chat/pages.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "pages_static.h"  // Built from edge/chat/static/ (embed.cmake).

namespace edge {

std::string HtmlEscape(const std::string& text) {
  return absl::StrReplaceAll(
      text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}, {"'", "&#39;"}});
}

std::string ScriptStringLiteral(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      case '\'':
        out += "\\u0027";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  // U+2028 and U+2029 end a line inside older JS string literals.
  out = absl::StrReplaceAll(out, {{"\xE2\x80\xA8", "\\u2028"}, {"\xE2\x80\xA9", "\\u2029"}});
  out += "\"";
  return out;
}

std::optional<Page> ChatPages(const std::string& path) {
  if (path == "/") return Page{.status = 302, .body = "", .location = "/chat/"};
  if (path == "/chat/") return Page{.body = LobbyPage()};
  if (absl::StartsWith(path, "/chat/") && absl::EndsWith(path, "/") && path.size() > 7 &&
      path.find('/', 6) == path.size() - 1) {
    return Page{.body = RoomPage(path.substr(6, path.size() - 7))};
  }
  return std::nullopt;
}

std::string LobbyPage() {
  return absl::StrReplaceAll(chat_static::kLobbyHtml, {{"{{STYLE}}", chat_static::kStyleCss}});
}

std::string RoomPage(const std::string& room_name) {
  // One pass over the file: what a room name brings in is never read again.
  return absl::StrReplaceAll(chat_static::kRoomHtml,
                             {{"{{STYLE}}", chat_static::kStyleCss},
                              {"{{ROOM_NAME}}", HtmlEscape(room_name)},
                              {"{{ROOM_NAME_JS}}", ScriptStringLiteral(room_name)}});
}

}  // namespace edge
