// The WebSocket close codes the edge sends or reads (RFC 6455 7.4.1), in one
// place: the framing, the sessions and the consumers name them from here.
//
// Constants only: no threads, no lifetime.
#ifndef CHAT_EDGE_CHANNELS_CLOSE_CODES_H_
#define CHAT_EDGE_CHANNELS_CLOSE_CODES_H_

#include <cstdint>

namespace edge {

inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;        // Shutdown.
inline constexpr uint16_t kCloseProtocolError = 1002;    // A frame RFC 6455 forbids.
inline constexpr uint16_t kCloseUnsupportedData = 1003;  // Binary, to a text consumer.
inline constexpr uint16_t kCloseNoStatus = 1005;         // Read only: a close without a code.
inline constexpr uint16_t kCloseAbnormal = 1006;         // Read only: no close frame.
inline constexpr uint16_t kCloseInvalidPayload = 1007;   // Text that is not UTF-8.
inline constexpr uint16_t kClosePolicy = 1008;           // Bad JSON, a frame too slow.
inline constexpr uint16_t kCloseTooBig = 1009;           // Over --max_frame_bytes.
inline constexpr uint16_t kCloseInternal = 1011;
inline constexpr uint16_t kCloseTryAgainLater = 1013;  // A reader that stopped reading.
// The connection's token expired while it was open: get a new one and reconnect.
inline constexpr uint16_t kCloseTokenExpired = 4001;

// What a person reads about a close the edge starts itself: the close frame's
// reason (at most 123 bytes), and the line the tutorial's page prints, since
// that page shows no close. Empty for a code that needs no words.
inline const char* CloseExplained(uint16_t code) {
  switch (code) {
    case kCloseGoingAway:
      return "the server is restarting: reload the page to reconnect";
    case kCloseProtocolError:
      return "the connection broke the WebSocket protocol";
    case kCloseUnsupportedData:
      return "binary frames are not accepted here";
    case kCloseInvalidPayload:
      return "a message was not valid UTF-8 text";
    case kClosePolicy:
      return "a message took too long to arrive";
    case kCloseTooBig:
      return "a message was over the size limit and was not delivered";
    case kCloseInternal:
      return "the chat service could not take this connection: reload the page to try again";
    case kCloseTryAgainLater:
      return "messages came faster than this page read them: reload the page to catch up";
    case kCloseTokenExpired:
      return "your sign-in expired: sign in again";
    default:
      return "";
  }
}

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_CLOSE_CODES_H_
