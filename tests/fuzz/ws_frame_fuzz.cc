// ws_frame_fuzz: edge::FrameParser (edge/net/ws_frame.h) on the bytes a hostile
// client may send, and edge::AppendFrame / ClosePayload round trips.
//
// Input: [limit][max chunk][chunk seed][round trip][mask key] then the stream.
//   - The stream is parsed twice, once with every byte available at once and
//     once as a WebSocketSession gets it (chunks of 1..max chunk bytes, the
//     unconsumed rest carried to the next read); both give the same inputs.
//   - Every input is checked against the frame's own header: consumed <= size,
//     consumed is exactly header + payload length, the payload is that frame's
//     (unmasked) bytes in the buffer, or the fragments joined; only masked
//     frames without reserved bits are taken; a message never exceeds the
//     limit and a text message (or close reason) is valid UTF-8; a close code
//     is one a peer may send; control payloads are at most 125 bytes; a kError
//     (1002, 1007 or 1009) is final: every later call is kError too.
//   - edge::IsValidUtf8 agrees with a plain reference decoder.
//   - What AppendFrame encodes, masked as a client would, parses back to the
//     same payload (or to the error the protocol asks for), and unmasked it is
//     refused with 1002.
// A crash (abort with a message on stderr) means the parser took or produced
// something the protocol or the session's assumptions forbid.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "edge/channels/consumer.h"
#include "edge/net/ws_frame.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using edge::FrameParser;
using edge::WsInput;
using edge::WsOpcode;

// A byte-by-byte UTF-8 decoder (RFC 3629), to compare edge::IsValidUtf8 with.
bool ReferenceUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // Truncated.
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

struct Event {
  WsInput::Kind kind;
  bool binary;
  uint16_t code;
  std::string payload;
  bool operator==(const Event& o) const {
    return kind == o.kind && binary == o.binary && code == o.code && payload == o.payload;
  }
};

// The header of the frame at `b` (already known to be whole): its length and
// the payload length it declares.
void ParseHeader(const unsigned char* b, size_t* header, uint64_t* length) {
  *length = b[1] & 0x7F;
  *header = 2;
  if (*length == 126) {
    *length = (uint64_t{b[2]} << 8) | b[3];
    *header = 4;
  } else if (*length == 127) {
    *length = 0;
    for (int i = 2; i < 10; ++i) *length = (*length << 8) | b[i];
    *header = 10;
  }
  *header += 4;  // The mask key.
}

// What the parser should be assembling, built from the frames it took.
struct Model {
  bool in_message = false;
  bool binary = false;
  std::string fragments;
};

// Checks one input the parser returned for the bytes at data[0, size), the
// frame being its own (masked) header and payload.
void CheckInput(const WsInput& in, const FrameParser& parser, const char* data, size_t size,
                size_t used, size_t limit, Model* model) {
  FUZZ_CHECK(used <= size);
  if (in.kind == WsInput::kNeedMore || in.kind == WsInput::kError) {
    // A kError may report the length of the frame it refused; the session
    // drops the connection either way.
    FUZZ_CHECK(in.kind == WsInput::kError || used == 0);
    if (in.kind == WsInput::kError) {
      FUZZ_CHECK(in.code == edge::kCloseProtocolError || in.code == edge::kCloseInvalidPayload ||
                 in.code == edge::kCloseTooBig);
    }
    return;
  }
  FUZZ_CHECK(used >= 6);
  const auto* b = reinterpret_cast<const unsigned char*>(data);
  const bool fin = (b[0] & 0x80) != 0;
  const uint8_t opcode = b[0] & 0x0F;
  FUZZ_CHECK((b[0] & 0x70) == 0);  // No extension: reserved bits clear.
  FUZZ_CHECK((b[1] & 0x80) != 0);  // Client frames are masked.
  size_t header;
  uint64_t length;
  ParseHeader(b, &header, &length);
  FUZZ_CHECK(header <= used && used - header == length);
  const std::string_view region(data + header, length);  // Unmasked in place.
  const bool control = (opcode & 0x8) != 0;
  if (control) {
    FUZZ_CHECK(fin && length <= 125);
  } else {
    FUZZ_CHECK(in.kind == WsInput::kNone || in.kind == WsInput::kMessage);
  }
  const auto within = [&](std::string_view p) {
    return p.empty() || (p.data() >= region.data() && p.data() + p.size() <= region.end());
  };
  switch (in.kind) {
    case WsInput::kPing:
    case WsInput::kPong:
      FUZZ_CHECK(opcode == (in.kind == WsInput::kPing ? 0x9 : 0xA));
      FUZZ_CHECK(in.payload == region && within(in.payload));
      break;
    case WsInput::kClose:
      FUZZ_CHECK(opcode == 0x8 && length != 1);
      if (length == 0) {
        FUZZ_CHECK(in.code == edge::kCloseNoStatus && in.payload.empty());
      } else {
        const uint16_t code = static_cast<uint16_t>((static_cast<unsigned char>(region[0]) << 8) |
                                                    static_cast<unsigned char>(region[1]));
        FUZZ_CHECK(in.code == code && edge::IsValidCloseCode(code));
        FUZZ_CHECK(in.payload == region.substr(2) && within(in.payload));
        FUZZ_CHECK(ReferenceUtf8(in.payload));
      }
      break;
    case WsInput::kNone:
      FUZZ_CHECK(!fin && (opcode == 0x0 || opcode == 0x1 || opcode == 0x2));
      FUZZ_CHECK(model->in_message == (opcode == 0));
      if (opcode != 0) {
        model->in_message = true;
        model->binary = opcode == 0x2;
      }
      model->fragments.append(region);
      FUZZ_CHECK(model->fragments.size() <= limit);
      break;
    case WsInput::kMessage:
      FUZZ_CHECK(fin);
      if (opcode == 0) {
        FUZZ_CHECK(model->in_message);
        model->fragments.append(region);
        FUZZ_CHECK(in.payload == model->fragments && in.binary == model->binary);
        *model = Model();
      } else {
        FUZZ_CHECK(opcode == 0x1 || opcode == 0x2);
        FUZZ_CHECK(!model->in_message);
        FUZZ_CHECK(in.payload == region && within(in.payload));
        FUZZ_CHECK(in.binary == (opcode == 0x2));
      }
      FUZZ_CHECK(in.payload.size() <= limit);
      if (!in.binary) FUZZ_CHECK(ReferenceUtf8(in.payload));
      break;
    default:
      FUZZ_CHECK(false);
  }
  // A control frame may come between fragments; it does not end the message.
  FUZZ_CHECK(parser.in_message() == model->in_message);
}

// A kError is final: the parser refuses everything after it.
void CheckFinal(FrameParser& parser, std::string rest) {
  size_t used = 1;
  WsInput again = parser.Next(rest.data(), rest.size(), &used);
  FUZZ_CHECK(again.kind == WsInput::kError && used == 0);
  char ping[] = {'\x89', '\x80', 1, 2, 3, 4};  // A valid masked empty ping.
  again = parser.Next(ping, sizeof ping, &used);
  FUZZ_CHECK(again.kind == WsInput::kError && used == 0);
}

// The whole stream at once, one frame per call.
std::vector<Event> ParseAtOnce(std::string stream, size_t limit) {
  FrameParser parser(limit);
  std::vector<Event> events;
  Model model;
  size_t offset = 0;
  while (true) {
    size_t used = 12345;
    char* p = stream.data() + offset;
    const size_t left = stream.size() - offset;
    const WsInput in = parser.Next(p, left, &used);
    CheckInput(in, parser, p, left, used, limit, &model);
    if (in.kind == WsInput::kNeedMore) break;
    events.push_back({in.kind, in.binary, in.code, std::string(in.payload)});
    if (in.kind == WsInput::kError) {
      CheckFinal(parser, stream.substr(offset));
      break;
    }
    offset += used;
  }
  return events;
}

// As WebSocketSession::Consume: reads of 1..max_chunk bytes; what a read leaves
// unconsumed is carried to the next.
std::vector<Event> ParseInChunks(const std::string& stream, size_t limit, size_t max_chunk,
                                 uint32_t seed) {
  FrameParser parser(limit);
  std::vector<Event> events;
  std::string carry;
  size_t fed = 0;
  uint32_t x = seed * 2654435761u + 1;
  while (fed < stream.size()) {
    x = x * 1103515245u + 12345u;
    const size_t n = std::min(stream.size() - fed, 1 + (x >> 8) % max_chunk);
    carry.append(stream, fed, n);
    fed += n;
    size_t offset = 0;
    while (offset < carry.size()) {
      size_t used = 12345;
      const WsInput in = parser.Next(carry.data() + offset, carry.size() - offset, &used);
      FUZZ_CHECK(used <= carry.size() - offset);
      if (in.kind == WsInput::kNeedMore) {
        FUZZ_CHECK(used == 0);
        break;
      }
      events.push_back({in.kind, in.binary, in.code, std::string(in.payload)});
      if (in.kind == WsInput::kError) return events;
      offset += used;
    }
    carry.erase(0, offset);
  }
  return events;
}

// `frame` (unmasked, as AppendFrame makes it) masked with `key` as a client would.
std::string MaskAsClient(const std::string& frame, const unsigned char key[4]) {
  const auto* b = reinterpret_cast<const unsigned char*>(frame.data());
  const size_t len7 = b[1] & 0x7F;
  const size_t header = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
  std::string out = frame.substr(0, header);
  out[1] = static_cast<char>(out[1] | 0x80);
  out.append(reinterpret_cast<const char*>(key), 4);
  out.append(frame, header);
  char* p = out.data() + header + 4;
  for (size_t i = 0, n = frame.size() - header; i < n; ++i)
    p[i] = static_cast<char>(p[i] ^ key[i % 4]);
  return out;
}

void RoundTrip(uint8_t mode, const unsigned char key[4], std::string_view stream) {
  static constexpr WsOpcode kOpcodes[] = {WsOpcode::kText, WsOpcode::kBinary, WsOpcode::kPing,
                                          WsOpcode::kPong};
  const WsOpcode opcode = kOpcodes[mode & 3];
  std::string payload(stream);
  // Lengths at the encoding's edges: 7-bit, 16-bit and 64-bit lengths.
  static constexpr size_t kSizes[] = {0, 125, 126, 65535, 65536, 65537};
  if (const size_t pick = (mode >> 2) & 15; pick < 6) {
    const size_t want = kSizes[pick];
    if (payload.empty()) payload = "x";
    while (payload.size() < want) payload.append(payload, 0, want - payload.size());
    payload.resize(want);
  }
  std::string frame;
  edge::AppendFrame(&frame, opcode, payload);
  FUZZ_CHECK(frame.size() >= payload.size() + 2);
  FUZZ_CHECK(static_cast<unsigned char>(frame[0]) == (0x80 | static_cast<uint8_t>(opcode)));

  const size_t limit = payload.size() + (mode >> 6);
  {
    // A server's frames are unmasked: a server must refuse them from a client.
    FrameParser parser(limit);
    size_t used;
    const WsInput in = parser.Next(frame.data(), frame.size(), &used);
    FUZZ_CHECK(in.kind == WsInput::kError && in.code == edge::kCloseProtocolError);
  }
  std::string masked = MaskAsClient(frame, key);
  FrameParser parser(limit);
  size_t used;
  const WsInput in = parser.Next(masked.data(), masked.size(), &used);
  switch (opcode) {
    case WsOpcode::kText:
      if (!edge::IsValidUtf8(payload)) {
        FUZZ_CHECK(in.kind == WsInput::kError && in.code == edge::kCloseInvalidPayload);
        return;
      }
      FUZZ_CHECK(in.kind == WsInput::kMessage && !in.binary);
      break;
    case WsOpcode::kBinary:
      FUZZ_CHECK(in.kind == WsInput::kMessage && in.binary);
      break;
    default:
      if (payload.size() > 125) {
        FUZZ_CHECK(in.kind == WsInput::kError && in.code == edge::kCloseProtocolError);
        return;
      }
      FUZZ_CHECK(in.kind == (opcode == WsOpcode::kPing ? WsInput::kPing : WsInput::kPong));
  }
  FUZZ_CHECK(used == masked.size() && in.payload == payload);

  if (opcode == WsOpcode::kText || opcode == WsOpcode::kBinary) {
    if (!payload.empty()) {
      // One byte over the limit: refused as too big.
      FrameParser small(payload.size() - 1);
      masked = MaskAsClient(frame, key);
      const WsInput big = small.Next(masked.data(), masked.size(), &used);
      FUZZ_CHECK(big.kind == WsInput::kError && big.code == edge::kCloseTooBig);
    }
  }
}

// A close frame with ClosePayload(code) and a reason comes back as that code.
void CloseRoundTrip(const unsigned char key[4], std::string_view stream) {
  if (stream.size() < 2) return;
  const uint16_t code = static_cast<uint16_t>((static_cast<unsigned char>(stream[0]) << 8) |
                                              static_cast<unsigned char>(stream[1]));
  std::string payload = edge::ClosePayload(code);
  const std::string reason(stream.substr(2, 123));
  if (!payload.empty()) {
    FUZZ_CHECK(payload.size() == 2);
    payload += reason;
  }
  std::string frame;
  edge::AppendFrame(&frame, WsOpcode::kClose, payload);
  std::string masked = MaskAsClient(frame, key);
  FrameParser parser(1);
  size_t used;
  const WsInput in = parser.Next(masked.data(), masked.size(), &used);
  if (payload.empty()) {
    FUZZ_CHECK(in.kind == WsInput::kClose && in.code == edge::kCloseNoStatus);
  } else if (edge::IsValidCloseCode(code) && edge::IsValidUtf8(reason)) {
    FUZZ_CHECK(in.kind == WsInput::kClose && in.code == code && in.payload == reason);
    FUZZ_CHECK(used == masked.size());
  } else {
    FUZZ_CHECK(in.kind == WsInput::kError);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  static constexpr size_t kLimits[] = {0, 1, 2, 125, 126, 127, 300, 65535, 65536, 65537, 1 << 20};
  constexpr size_t kLimitCount = sizeof kLimits / sizeof kLimits[0];
  const size_t limit = data[0] < kLimitCount ? kLimits[data[0]] : size_t{data[0]} * 37;
  const size_t max_chunk = data[1] == 0 ? size : data[1];
  const uint32_t seed = data[2];
  const uint8_t round_trip = data[3];
  const unsigned char key[4] = {data[4], static_cast<unsigned char>(data[4] * 7 + 1),
                                static_cast<unsigned char>(data[4] ^ 0x5A),
                                static_cast<unsigned char>(data[4] + 0x33)};
  const std::string stream(reinterpret_cast<const char*>(data) + 5, size - 5);

  FUZZ_CHECK(edge::IsValidUtf8(stream) == ReferenceUtf8(stream));

  const std::vector<Event> at_once = ParseAtOnce(stream, limit);
  const std::vector<Event> chunked = ParseInChunks(stream, limit, max_chunk, seed);
  FUZZ_CHECK(at_once == chunked);
  for (const Event& e : at_once) {
    if (!e.payload.empty()) FUZZ_CHECK(edge::IsValidUtf8(e.payload) == ReferenceUtf8(e.payload));
  }

  RoundTrip(round_trip, key, stream);
  CloseRoundTrip(key, stream);
  return 0;
}
