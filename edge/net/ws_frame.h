// The server side of RFC 6455 framing, without I/O: FrameParser turns the
// bytes a client sent into messages and control frames, and AppendFrame
// encodes what the server sends (unmasked, one frame per message).
//
// Why not Beast's websocket::stream after the handshake: it writes one frame
// per operation and holds ~5 KB per connection (its state, a read buffer, a
// pending read) even when idle. The edge instead reads into one buffer per
// I/O thread only when a socket is readable, and writes every queued frame of
// a socket in one syscall. Beast still answers the upgrade handshake.
//
//   FrameParser parser(64 << 10);
//   size_t used;
//   WsInput in = parser.Next(data, size, &used);  // unmasks data in place
//   if (in.kind == WsInput::kMessage) Handle(in.payload);
//
// Not thread-safe; one parser per connection.
#ifndef CHAT_EDGE_NET_WS_FRAME_H_
#define CHAT_EDGE_NET_WS_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "edge/channels/close_codes.h"
#include "shared/utf8.h"

namespace edge {

enum class WsOpcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

struct WsInput {
  enum Kind {
    kNeedMore,  // No whole frame yet: call again with more bytes.
    kMessage,   // A whole text or binary message (fragments joined).
    kPing,
    kPong,
    kClose,  // code: the peer's code (1005 if none); payload: its reason.
    kNone,   // A fragment was taken in; nothing to act on yet.
    kError,  // code: the close code to answer with; the connection is over.
  };
  Kind kind = kNeedMore;
  bool binary = false;
  // Valid until the next call to Next().
  std::string_view payload;
  uint16_t code = 0;
};

class FrameParser {
 public:
  explicit FrameParser(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Takes at most one frame from the start of data[0, size), unmasking its
  // payload in place; *consumed is the frame's length, or 0 if it is not all
  // there yet (kNeedMore). A frame or message longer than the limit is
  // refused from its header alone (kError, 1009).
  WsInput Next(char* data, size_t size, size_t* consumed);

  // Whether a fragmented message is being assembled (memory held).
  bool in_message() const { return in_message_; }

 private:
  WsInput Error(uint16_t code);

  const size_t max_message_bytes_;
  bool in_message_ = false;
  bool message_binary_ = false;
  bool failed_ = false;
  // The fragments of a message so far; empty (no memory) otherwise.
  std::string fragments_;
  bool release_fragments_ = false;
};

// Appends one unmasked final frame to `out`.
void AppendFrame(std::string* out, WsOpcode opcode, std::string_view payload);
// A close frame's payload for `code` (none for 1005, which must not be sent),
// with at most 123 bytes of `reason`.
std::string ClosePayload(uint16_t code, std::string_view reason = {});

// RFC 3629 UTF-8 (shared/utf8.h).
using chat::IsValidUtf8;
// Codes a peer may send in a close frame (RFC 6455 7.4).
bool IsValidCloseCode(uint16_t code);

}  // namespace edge

#endif  // CHAT_EDGE_NET_WS_FRAME_H_
