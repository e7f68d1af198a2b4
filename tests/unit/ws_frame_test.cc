// Unit tests of the edge's RFC 6455 framing (edge/net/ws_frame.h), byte by byte.
#include "edge/net/ws_frame.h"

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/client_frame.h"

namespace edge {
namespace {

using ::chat::testing::ClientFrame;

// Runs every frame in `bytes` through a parser; what each call returned.
std::vector<WsInput> ParseAll(FrameParser& parser, std::string& bytes,
                              std::vector<std::string>* payloads = nullptr) {
  std::vector<WsInput> out;
  size_t offset = 0;
  while (offset < bytes.size()) {
    size_t used = 0;
    WsInput in = parser.Next(bytes.data() + offset, bytes.size() - offset, &used);
    if (payloads != nullptr) payloads->emplace_back(in.payload);
    out.push_back(in);
    if (in.kind == WsInput::kNeedMore || in.kind == WsInput::kError) break;
    offset += used;
  }
  return out;
}

uint16_t ErrorOf(const std::string& frame, size_t max = 1024) {
  FrameParser parser(max);
  std::string bytes = frame;
  std::vector<WsInput> got = ParseAll(parser, bytes);
  return got.back().kind == WsInput::kError ? got.back().code : 0;
}

TEST(FrameParserTest, UnmasksATextMessageInPlace) {
  FrameParser parser(1024);
  std::string bytes = ClientFrame(0x1, R"({"message":"hello, room"})");
  size_t used = 0;
  WsInput in = parser.Next(bytes.data(), bytes.size(), &used);
  EXPECT_EQ(in.kind, WsInput::kMessage);
  EXPECT_FALSE(in.binary);
  EXPECT_EQ(in.payload, R"({"message":"hello, room"})");
  EXPECT_EQ(used, bytes.size());
}

TEST(FrameParserTest, WaitsForWholeFramesWhateverTheSplit) {
  const std::string message(300, 'm');  // A 16-bit length.
  const std::string frame = ClientFrame(0x1, message);
  for (size_t cut = 0; cut < frame.size(); ++cut) {
    FrameParser parser(1024);
    std::string head = frame.substr(0, cut);
    size_t used = 99;
    EXPECT_EQ(parser.Next(head.data(), head.size(), &used).kind, WsInput::kNeedMore) << cut;
    EXPECT_EQ(used, 0u);
    std::string whole = frame;
    WsInput in = parser.Next(whole.data(), whole.size(), &used);
    ASSERT_EQ(in.kind, WsInput::kMessage) << cut;
    EXPECT_EQ(in.payload, message);
  }
}

TEST(FrameParserTest, JoinsFragmentsAndAnswersControlFramesBetweenThem) {
  FrameParser parser(1024);
  std::string bytes = ClientFrame(0x1, "hel", false) + ClientFrame(0x9, "are you there") +
                      ClientFrame(0x0, "lo ", false) + ClientFrame(0x0, "room") +
                      ClientFrame(0x2, std::string("\xff\x00", 2));
  std::vector<std::string> payloads;
  std::vector<WsInput> got = ParseAll(parser, bytes, &payloads);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].kind, WsInput::kNone);
  EXPECT_EQ(got[1].kind, WsInput::kPing);
  EXPECT_EQ(payloads[1], "are you there");
  EXPECT_EQ(got[2].kind, WsInput::kNone);
  EXPECT_EQ(got[3].kind, WsInput::kMessage);
  EXPECT_EQ(payloads[3], "hello room");
  EXPECT_EQ(got[4].kind, WsInput::kMessage);
  EXPECT_TRUE(got[4].binary);
  EXPECT_EQ(payloads[4], std::string("\xff\x00", 2));  // Binary needs no UTF-8.
  EXPECT_FALSE(parser.in_message());
}

TEST(FrameParserTest, ReadsCloseCodesAndReasons) {
  FrameParser parser(1024);
  std::string bytes = ClientFrame(0x8, std::string("\x03\xe9", 2) + "bye");
  std::vector<std::string> payloads;
  std::vector<WsInput> got = ParseAll(parser, bytes, &payloads);
  ASSERT_EQ(got[0].kind, WsInput::kClose);
  EXPECT_EQ(got[0].code, 1001);
  EXPECT_EQ(payloads[0], "bye");

  FrameParser empty(1024);
  bytes = ClientFrame(0x8, "");
  EXPECT_EQ(ParseAll(empty, bytes)[0].code, 1005);  // No status given.
}

TEST(FrameParserTest, ProtocolViolationsAre1002) {
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, "x", true, /*masked=*/false)), 1002);
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, "x", true, true, /*rsv=*/0x40)), 1002);
  EXPECT_EQ(ErrorOf(ClientFrame(0x3, "x")), 1002);                    // Reserved opcode.
  EXPECT_EQ(ErrorOf(ClientFrame(0x9, "p", /*fin=*/false)), 1002);     // Fragmented control.
  EXPECT_EQ(ErrorOf(ClientFrame(0x9, std::string(126, 'p'))), 1002);  // Control too long.
  EXPECT_EQ(ErrorOf(ClientFrame(0x0, "x")), 1002);                    // Continuation first.
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, "a", false) + ClientFrame(0x1, "b")), 1002);
  EXPECT_EQ(ErrorOf(ClientFrame(0x8, "\x03")), 1002);                      // Half a code.
  EXPECT_EQ(ErrorOf(ClientFrame(0x8, std::string("\x03\xed", 2))), 1002);  // 1005 is not sendable.
  // A length in a longer form than needed.
  std::string long_form = ClientFrame(0x1, std::string(200, 'x'));
  long_form[1] = static_cast<char>(0x80 | 126);
  long_form.replace(2, 2, std::string("\x00\x05", 2));
  EXPECT_EQ(ErrorOf(long_form), 1002);
}

TEST(FrameParserTest, InvalidUtf8TextIs1007) {
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, "caf\xc3")), 1007);   // Cut inside a character.
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, "\xc0\xaf")), 1007);  // Overlong '/'.
  EXPECT_EQ(ErrorOf(ClientFrame(0x8, std::string("\x03\xe8\xff", 3))), 1007);
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, "caf\xc3\xa9 \xf0\x9f\x92\xac")), 0);  // "café 💬"
}

TEST(FrameParserTest, OversizedMessagesAre1009FromTheHeaderAlone) {
  // Only the header of a 70 KB frame has arrived: refused already.
  std::string header = ClientFrame(0x1, std::string(70 << 10, 'x')).substr(0, 14);
  FrameParser parser(64 << 10);
  size_t used = 0;
  WsInput in = parser.Next(header.data(), header.size(), &used);
  EXPECT_EQ(in.kind, WsInput::kError);
  EXPECT_EQ(in.code, 1009);
  // Fragments count together.
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, std::string(600, 'a'), false) +
                        ClientFrame(0x0, std::string(600, 'b')),
                    1024),
            1009);
  EXPECT_EQ(ErrorOf(ClientFrame(0x1, std::string(1024, 'a')), 1024), 0);
}

// Random messages, randomly fragmented with pings between fragments, arriving
// in random pieces (as reads do): the parser, fed the way the session feeds it
// (keeping an incomplete frame for the next read), gives back exactly what was
// sent, in order. The seed is fixed so that a failure reproduces.
TEST(FrameParserTest, RandomFragmentsInRandomPiecesComeBackWhole) {
  std::mt19937 rng(20261126);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const std::string alphabet[] = {
      "a", "Z", "0", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x92\xac"};
  for (int round = 0; round < 200; ++round) {
    std::string wire;
    std::vector<std::pair<WsInput::Kind, std::string>> sent;
    for (int m = pick(1, 6); m > 0; --m) {
      const bool binary = pick(0, 3) == 0;
      std::string message;
      for (int n = pick(0, 300); n > 0; --n) {
        message += binary ? std::string(1, static_cast<char>(pick(0, 255))) : alphabet[pick(0, 6)];
      }
      // Cut into fragments (byte boundaries: UTF-8 is checked on the whole message).
      size_t at = 0;
      bool first = true;
      do {
        const size_t take = std::min<size_t>(message.size() - at, pick(0, 120));
        const bool fin = at + take == message.size();
        wire += ClientFrame(first ? (binary ? 0x2 : 0x1) : 0x0, message.substr(at, take), fin);
        at += take;
        first = false;
        if (!fin && pick(0, 2) == 0) {
          wire += ClientFrame(0x9, "p" + std::to_string(round));
          sent.emplace_back(WsInput::kPing, "p" + std::to_string(round));
        }
      } while (at < message.size());
      sent.emplace_back(WsInput::kMessage, message);
    }
    FrameParser parser(64 << 10);
    std::vector<std::pair<WsInput::Kind, std::string>> got;
    std::string buffered;
    for (size_t fed = 0; fed < wire.size();) {
      const size_t piece = std::min<size_t>(wire.size() - fed, pick(1, 200));
      buffered.append(wire, fed, piece);
      fed += piece;
      size_t offset = 0, used = 0;
      for (;;) {
        WsInput in = parser.Next(buffered.data() + offset, buffered.size() - offset, &used);
        ASSERT_NE(in.kind, WsInput::kError) << "round " << round << " code " << in.code;
        if (in.kind == WsInput::kNeedMore) break;
        offset += used;
        if (in.kind != WsInput::kNone) got.emplace_back(in.kind, std::string(in.payload));
      }
      buffered.erase(0, offset);
    }
    EXPECT_TRUE(buffered.empty()) << "round " << round;
    ASSERT_EQ(got, sent) << "round " << round;
  }
}

TEST(AppendFrameTest, EncodesEachLengthFormUnmasked) {
  struct Case {
    size_t length;
    std::string header;
  };
  for (const Case& c :
       {Case{0, std::string("\x81\x00", 2)}, Case{125, "\x81\x7d"},
        Case{126, std::string("\x81\x7e\x00\x7e", 4)}, Case{65535, "\x81\x7e\xff\xff"},
        Case{65536, std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10)}}) {
    std::string out;
    AppendFrame(&out, WsOpcode::kText, std::string(c.length, 'z'));
    EXPECT_EQ(out.substr(0, c.header.size()), c.header) << c.length;
    EXPECT_EQ(out.size(), c.header.size() + c.length);
  }
  std::string close;
  AppendFrame(&close, WsOpcode::kClose, ClosePayload(1013));
  EXPECT_EQ(close, std::string("\x88\x02\x03\xf5", 4));
  EXPECT_EQ(ClosePayload(1005), "");
  EXPECT_EQ(ClosePayload(4011, "off topic"), std::string("\x0f\xab") + "off topic");
  // At most 123 bytes of reason, never cutting a character in two ("é" is 2 bytes).
  EXPECT_EQ(ClosePayload(4010, std::string(200, 'r')).size(), 125u);
  const std::string accents = std::string(122, 'r') + "\xc3\xa9";
  EXPECT_EQ(ClosePayload(4010, accents), std::string("\x0f\xaa") + std::string(122, 'r'));
  EXPECT_TRUE(IsValidUtf8(ClosePayload(4010, accents).substr(2)));
}

TEST(Utf8Test, AcceptsCharactersAndRefusesMalformedSequences) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));       // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // A surrogate.
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // Past U+10FFFF.
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // Truncated.
  EXPECT_FALSE(IsValidUtf8("abcdefgh\x80"));      // A lone continuation byte.
  EXPECT_FALSE(IsValidUtf8("\xe2\x28\xa1"));      // A bad continuation byte.
}

TEST(CloseCodeTest, OnlySendableCodesAreValid) {
  for (uint16_t ok : {1000, 1001, 1003, 1007, 1011, 1013, 3000, 4999}) {
    EXPECT_TRUE(IsValidCloseCode(ok)) << ok;
  }
  for (uint16_t bad : {0, 999, 1004, 1005, 1006, 1015, 2000, 5000}) {
    EXPECT_FALSE(IsValidCloseCode(bad)) << bad;
  }
}

}  // namespace
}  // namespace edge
