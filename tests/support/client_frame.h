// ClientFrame: one WebSocket frame as a client sends it (masked, RFC 6455
// 5.2), with knobs to break the rules, for tests of the edge's framing.
//
//   std::string f = ClientFrame(0x1, R"({"message":"hi"})");           // text
//   std::string bad = ClientFrame(0x1, "x", true, /*masked=*/false);  // 1002
#ifndef CHAT_TESTS_SUPPORT_CLIENT_FRAME_H_
#define CHAT_TESTS_SUPPORT_CLIENT_FRAME_H_

#include <cstdint>
#include <string>

namespace chat::testing {

inline std::string ClientFrame(uint8_t opcode, const std::string& payload, bool fin = true,
                               bool masked = true, uint8_t rsv = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | opcode));
  const int mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size()));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>(uint64_t{payload.size()} >> (8 * i)));
  }
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked) f.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  }
  return f;
}

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_CLIENT_FRAME_H_
