// IsValidUtf8: whether bytes are UTF-8 as RFC 3629 defines it (no overlong
// forms, no UTF-16 surrogates, nothing past U+10FFFF), as a WebSocket text
// frame (RFC 6455 8.1) and a JSON string must be. Pure; thread-safe.
#ifndef CHAT_SHARED_UTF8_H_
#define CHAT_SHARED_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace chat {

bool IsValidUtf8(std::string_view text);
// `text` cut to at most `max` bytes, before a UTF-8 continuation byte (so
// that valid text stays valid).
std::string ClipUtf8(std::string_view text, size_t max);

}  // namespace chat

#endif  // CHAT_SHARED_UTF8_H_
