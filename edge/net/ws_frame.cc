#include "edge/net/ws_frame.h"

#include <algorithm>
#include <cstring>

namespace edge {

namespace {

bool IsControl(uint8_t opcode) { return (opcode & 0x8) != 0; }

bool IsKnown(uint8_t opcode) {
  switch (static_cast<WsOpcode>(opcode)) {
    case WsOpcode::kContinuation:
    case WsOpcode::kText:
    case WsOpcode::kBinary:
    case WsOpcode::kClose:
    case WsOpcode::kPing:
    case WsOpcode::kPong:
      return true;
  }
  return false;
}

// Client frames are masked with a 4-byte key (RFC 6455 5.3); eight bytes at a time.
void Unmask(char* p, size_t n, const unsigned char key[4]) {
  uint64_t key8;
  unsigned char k[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  std::memcpy(&key8, k, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    word ^= key8;
    std::memcpy(p + i, &word, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i % 4]);
}

}  // namespace

WsInput FrameParser::Error(uint16_t code) {
  failed_ = true;
  std::string().swap(fragments_);
  WsInput out;
  out.kind = WsInput::kError;
  out.code = code;
  return out;
}

WsInput FrameParser::Next(char* data, size_t size, size_t* consumed) {
  *consumed = 0;
  if (release_fragments_) {
    std::string().swap(fragments_);
    release_fragments_ = false;
  }
  if (failed_) return Error(kCloseProtocolError);
  if (size < 2) return {};
  const auto* b = reinterpret_cast<const unsigned char*>(data);
  const bool fin = (b[0] & 0x80) != 0;
  const uint8_t opcode = b[0] & 0x0F;
  const bool masked = (b[1] & 0x80) != 0;
  uint64_t length = b[1] & 0x7F;
  // No extension was negotiated, so the reserved bits must be clear.
  if ((b[0] & 0x70) != 0 || !IsKnown(opcode) || !masked) return Error(kCloseProtocolError);
  if (IsControl(opcode) && (!fin || length > 125)) return Error(kCloseProtocolError);

  size_t header = 2;
  if (length == 126) {
    if (size < 4) return {};
    length = (uint64_t{b[2]} << 8) | b[3];
    if (length < 126) return Error(kCloseProtocolError);  // Not the shortest form.
    header = 4;
  } else if (length == 127) {
    if (size < 10) return {};
    length = 0;
    for (int i = 2; i < 10; ++i) length = (length << 8) | b[i];
    if (length <= 0xFFFF || (length >> 63) != 0) return Error(kCloseProtocolError);
    header = 10;
  }
  const size_t so_far = opcode == 0 ? fragments_.size() : 0;
  if (!IsControl(opcode) && length > max_message_bytes_ - so_far) return Error(kCloseTooBig);
  if (size < header + 4) return {};
  unsigned char key[4];
  std::memcpy(key, b + header, 4);
  header += 4;
  if (size - header < length) return {};

  char* payload = data + header;
  Unmask(payload, length, key);
  *consumed = header + length;
  const std::string_view bytes(payload, length);
  WsInput out;

  switch (static_cast<WsOpcode>(opcode)) {
    case WsOpcode::kContinuation:
      if (!in_message_) return Error(kCloseProtocolError);
      fragments_.append(bytes);
      if (!fin) {
        out.kind = WsInput::kNone;
        return out;
      }
      in_message_ = false;
      release_fragments_ = true;
      out.binary = message_binary_;
      out.payload = fragments_;
      break;
    case WsOpcode::kText:
    case WsOpcode::kBinary:
      if (in_message_) return Error(kCloseProtocolError);
      out.binary = opcode == static_cast<uint8_t>(WsOpcode::kBinary);
      if (!fin) {
        in_message_ = true;
        message_binary_ = out.binary;
        fragments_.assign(bytes);
        out.kind = WsInput::kNone;
        return out;
      }
      out.payload = bytes;
      break;
    case WsOpcode::kClose: {
      out.kind = WsInput::kClose;
      out.code = kCloseNoStatus;
      if (length == 1) return Error(kCloseProtocolError);
      if (length >= 2) {
        out.code = static_cast<uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                         static_cast<unsigned char>(payload[1]));
        if (!IsValidCloseCode(out.code)) return Error(kCloseProtocolError);
        out.payload = bytes.substr(2);
        if (!IsValidUtf8(out.payload)) return Error(kCloseInvalidPayload);
      }
      return out;
    }
    case WsOpcode::kPing:
    case WsOpcode::kPong:
      out.kind = opcode == static_cast<uint8_t>(WsOpcode::kPing) ? WsInput::kPing : WsInput::kPong;
      out.payload = bytes;
      return out;
  }
  if (!out.binary && !IsValidUtf8(out.payload)) return Error(kCloseInvalidPayload);
  out.kind = WsInput::kMessage;
  return out;
}

void AppendFrame(std::string* out, WsOpcode opcode, std::string_view payload) {
  char header[10];
  size_t n = 2;
  header[0] = static_cast<char>(0x80 | static_cast<uint8_t>(opcode));
  const uint64_t length = payload.size();
  if (length < 126) {
    header[1] = static_cast<char>(length);
  } else if (length <= 0xFFFF) {
    header[1] = 126;
    header[2] = static_cast<char>(length >> 8);
    header[3] = static_cast<char>(length);
    n = 4;
  } else {
    header[1] = 127;
    for (int i = 0; i < 8; ++i) header[2 + i] = static_cast<char>(length >> (56 - 8 * i));
    n = 10;
  }
  out->append(header, n);
  out->append(payload);
}

std::string ClosePayload(uint16_t code, std::string_view reason) {
  if (code == kCloseNoStatus || code == kCloseAbnormal || code == 1015) return {};
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  // At most 123 bytes of reason (a control frame carries 125), cut before a
  // UTF-8 continuation byte so that what is left is still valid text.
  size_t n = std::min<size_t>(reason.size(), 123);
  while (n > 0 && n < reason.size() && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
  payload.append(reason.substr(0, n));
  return payload;
}

bool IsValidCloseCode(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  if (code < 1000 || code > 1014) return false;
  return code != 1004 && code != kCloseNoStatus && code != kCloseAbnormal;
}

}  // namespace edge
