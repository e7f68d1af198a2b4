// Unit tests of the edge's pieces, without sockets: router, protocol parsing,
// origin check, page escaping, consumer dispatch and group handling, layers.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "edge/channels/channel_table.h"
#include "edge/channels/consumer.h"
#include "edge/channels/layer_event.h"
#include "edge/channels/memory_layer.h"
#include "edge/channels/router.h"
#include "edge/chat/chat_consumer.h"
#include "edge/chat/pages.h"
#include "edge/net/admission.h"
#include "edge/net/http_session.h"
#include "edge/net/recent_refusals.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared/reason.h"

namespace edge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// ------------------------------------------------------------------ Router

TEST(RouterTest, CapturesWordSegments) {
  Router router;
  router.Add("/ws/chat/{room_name}/", [] { return std::make_unique<ChatConsumer>(); });
  router.Add("/ws/echo/", [] { return std::make_unique<EchoConsumer>(); });
  auto m = router.Find("/ws/chat/lobby_2/");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->captures.at("room_name"), "lobby_2");
  EXPECT_TRUE(router.Find("/ws/echo/").has_value());
}

TEST(RouterTest, RefusesWhatTheTutorialsRouteRefuses) {
  Router router;
  router.Add("/ws/chat/{room_name}/", [] { return std::make_unique<ChatConsumer>(); });
  for (const char* path : {"/ws/chat/a-b/", "/ws/chat//", "/ws/chat/lobby", "/ws/chat/a/b/",
                           "/ws/chat/caf\xc3\xa9/", "/ws/chat/a b/", "/chat/lobby/", "/"}) {
    EXPECT_FALSE(router.Find(path).has_value()) << path;
  }
}

TEST(RouterTest, ValidatorCanRefuseAMatch) {
  Router router;
  router.Add(
      "/ws/chat/{room_name}/", [] { return std::make_unique<ChatConsumer>(); },
      [](const Router::Captures& c) { return c.at("room_name").size() <= 5; });
  EXPECT_TRUE(router.Find("/ws/chat/short/").has_value());
  EXPECT_FALSE(router.Find("/ws/chat/toolong/").has_value());
}

// ---------------------------------------------------------- Client protocol

TEST(ClientMessageTest, TakesAStringMessage) {
  ClientMessage m = ParseClientMessage(R"({"message": "hi \u00e9", "extra": 1})");
  ASSERT_TRUE(m.message.has_value());
  EXPECT_EQ(*m.message, "hi \xc3\xa9");
}

TEST(ClientMessageTest, AnswersBadFramesWithAnErrorFrame) {
  for (const char* bad : {"not json", "[1,2]", R"({"msg":"x"})", R"({"message": 5})",
                          R"({"message": null})", "", "{"}) {
    ClientMessage m = ParseClientMessage(bad);
    EXPECT_FALSE(m.message.has_value()) << bad;
    EXPECT_FALSE(m.error_detail.empty()) << bad;
  }
}

TEST(ErrorFrameTest, TypedForV2ReadableForTheTutorialsPage) {
  const std::string hi = "hi";
  const std::string typed = ErrorFrame("not_delivered", "the layer is down", &hi);
  EXPECT_THAT(typed, HasSubstr(R"("error":"not_delivered")"));
  EXPECT_THAT(typed, Not(HasSubstr(R"("message")")));
  const std::string readable = ErrorFrame("not_delivered", "the layer is down", &hi, true);
  EXPECT_THAT(readable, HasSubstr(R"("error":"not_delivered")"));
  EXPECT_THAT(readable, HasSubstr(R"("message":"[not delivered] \"hi\": the layer is down")"));
  EXPECT_THAT(ErrorFrame("unconfirmed", "cut", &hi, true),
              HasSubstr(R"("message":"[maybe not delivered] \"hi\": cut")"));
  EXPECT_THAT(ErrorFrame("bad_frame", "not JSON", nullptr, true),
              HasSubstr(R"("message":"[not understood] not JSON")"));
}

// A ChatConsumer as a v1 or a v2 client's, without a connection.
class FarewellProbe : public ChatConsumer {
 public:
  explicit FarewellProbe(bool v2) { typed_errors_ = v2; }
};

TEST(FarewellTest, ATutorialPageIsToldWhyEveryCloseOfTheEdgesOwnAndV2ReadsTheCloseFrame) {
  FarewellProbe v1(false);
  EXPECT_THAT(v1.Farewell(kCloseTokenExpired, ""),
              HasSubstr(R"("message":"[disconnected] your sign-in expired: sign in again")"));
  for (uint16_t code :
       {kCloseGoingAway, kCloseProtocolError, kCloseUnsupportedData, kCloseInvalidPayload,
        kClosePolicy, kCloseTooBig, kCloseInternal, kCloseTryAgainLater, kCloseTokenExpired}) {
    EXPECT_THAT(v1.Farewell(code, ""), HasSubstr(R"("message":"[disconnected] )")) << code;
    EXPECT_LE(std::string(CloseExplained(code)).size(), 123u) << code;  // A close frame's reason.
  }
  EXPECT_EQ(v1.Farewell(kCloseNormal, ""), "");  // Nothing to explain.
  // An operator's words go to both.
  EXPECT_THAT(v1.Farewell(4011, "off topic"), HasSubstr(R"("message":"[disconnected] off topic")"));
  FarewellProbe v2(true);
  EXPECT_THAT(v2.Farewell(4011, "off topic"), HasSubstr(R"("error":"disconnected")"));
  EXPECT_EQ(v2.Farewell(kCloseGoingAway, ""), "");
}

// ----------------------------------------------------------- RecentRefusals

TEST(RecentRefusalsTest, KeepsEachAttemptsRefusalForItsTtlAndNoMoreThanItsCapacity) {
  chat::FakeClock clock;
  RecentRefusals refusals(/*capacity=*/3, absl::Minutes(1), &clock);
  const std::string ann = "attempt-ann-0123456789";
  refusals.Record(ann, 429, "over the cap\n");
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(refusals.Find(ann).has_value());
  EXPECT_EQ(refusals.Find(ann)->status, 429);
  EXPECT_FALSE(refusals.Find("attempt-bob-0123456789").has_value());
  refusals.Record("", 401, "no attempt named: not kept");
  EXPECT_FALSE(refusals.Find("").has_value());
  clock.Advance(absl::Seconds(60));
  EXPECT_FALSE(refusals.Find(ann).has_value());
  // Past its capacity the oldest go first; an id recorded again keeps its
  // place and takes its latest refusal.
  for (const char* id :
       {"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc", "dddddddddddddddd"}) {
    clock.Advance(absl::Seconds(1));
    refusals.Record(id, 401, "no");
  }
  EXPECT_FALSE(refusals.Find("aaaaaaaaaaaaaaaa").has_value());
  EXPECT_TRUE(refusals.Find("dddddddddddddddd").has_value());
  for (int i = 0; i < 1000; ++i)
    refusals.Record("dddddddddddddddd", 401, absl::StrCat("again ", i));
  EXPECT_EQ(refusals.Find("dddddddddddddddd")->reason, "again 999");
  EXPECT_TRUE(refusals.Find("cccccccccccccccc").has_value());
  // A long reason is clipped.
  refusals.Record("eeeeeeeeeeeeeeee", 401, std::string(5000, 'x'));
  EXPECT_EQ(refusals.Find("eeeeeeeeeeeeeeee")->reason.size(), RecentRefusals::kMaxReason);
}

TEST(RecentRefusalsTest, AnAttemptIdIsSixteenToSixtyFourSafeCharacters) {
  EXPECT_EQ(RecentRefusals::AttemptOf("token=x&attempt=0123456789abcdef"), "0123456789abcdef");
  EXPECT_EQ(RecentRefusals::AttemptOf("attempt=short"), "");
  EXPECT_EQ(RecentRefusals::AttemptOf("attempt=" + std::string(65, 'a')), "");
  EXPECT_EQ(RecentRefusals::AttemptOf("attempt=0123456789abcdef%20"), "");
  EXPECT_EQ(RecentRefusals::AttemptOf("since=3"), "");
}

// ------------------------------------------------------------------- Origin

TEST(OriginTest, SameHostOrNoOriginIsAllowed) {
  EXPECT_TRUE(OriginAllowed("", "chat.example.com", {}));
  EXPECT_TRUE(OriginAllowed("http://localhost:8000", "localhost:8000", {}));
  EXPECT_TRUE(OriginAllowed("https://Chat.Example.com", "chat.example.com", {}));
  EXPECT_TRUE(OriginAllowed("http://chat.example.com", "chat.example.com:80", {}));
}

TEST(OriginTest, OtherSitesAreRefused) {
  EXPECT_FALSE(OriginAllowed("http://evil.test", "localhost:8000", {}));
  EXPECT_FALSE(OriginAllowed("http://localhost:9000", "localhost:8000", {}));
  EXPECT_FALSE(OriginAllowed("null", "localhost:8000", {}));
  EXPECT_FALSE(OriginAllowed("http://example.com.evil.test", "x", {".example.com"}));
}

TEST(OriginTest, ConfiguredOriginsAreAllowed) {
  EXPECT_TRUE(OriginAllowed("https://app.example.com", "edge:8000", {"https://app.example.com"}));
  EXPECT_FALSE(OriginAllowed("http://app.example.com", "edge:8000", {"https://app.example.com"}));
  EXPECT_TRUE(OriginAllowed("https://a.b.example.com", "edge:8000", {".example.com"}));
  EXPECT_TRUE(OriginAllowed("https://example.com", "edge:8000", {".example.com"}));
  EXPECT_TRUE(OriginAllowed("http://anything.test", "edge:8000", {"*"}));
}

TEST(OriginTest, MatchesHostAndPortExactly) {
  // Issue 9, defect 7: these passed by prefix, or with another scheme.
  EXPECT_FALSE(OriginAllowed("http://127.0.0.1:18005.evil.com", "127.0.0.1:18005", {}));
  EXPECT_FALSE(OriginAllowed("http://127.0.0.1:18005evil", "127.0.0.1:18005", {}));
  EXPECT_FALSE(OriginAllowed("ftp://127.0.0.1:18005", "127.0.0.1:18005", {}));
  EXPECT_FALSE(OriginAllowed("http://127.0.0.1:18005/path", "127.0.0.1:18005", {}));
  EXPECT_FALSE(OriginAllowed("http://user@127.0.0.1:18005", "127.0.0.1:18005", {}));
  EXPECT_FALSE(OriginAllowed("http://127.0.0.1:180050", "127.0.0.1:18005", {}));
  EXPECT_FALSE(OriginAllowed("http://127.0.0.1", "127.0.0.1:18005", {}));
  EXPECT_TRUE(OriginAllowed("http://127.0.0.1:18005", "127.0.0.1:18005", {}));
  EXPECT_TRUE(OriginAllowed("http://[::1]:8000", "[::1]:8000", {}));
  EXPECT_FALSE(OriginAllowed("http://example.com.evil.test", "x", {"https://example.com"}));
  EXPECT_FALSE(OriginAllowed("https://evilexample.com", "x", {".example.com"}));
}

TEST(HostTest, OnlyAllowedHostsMayUpgrade) {
  const std::vector<std::string> local = {"localhost", "127.0.0.1", "[::1]"};
  EXPECT_TRUE(HostAllowed("127.0.0.1:8000", local));
  EXPECT_TRUE(HostAllowed("LOCALHOST", local));
  EXPECT_TRUE(HostAllowed("[::1]:8000", local));
  // DNS rebinding: a page of evil.com, resolved to us, names its own host.
  EXPECT_FALSE(HostAllowed("evil.com", local));
  EXPECT_FALSE(HostAllowed("", local));
  EXPECT_FALSE(HostAllowed("127.0.0.1:8000/x", local));
  EXPECT_FALSE(HostAllowed("127.0.0.1:", local));
  EXPECT_FALSE(HostAllowed("127.0.0.1:99999", local));
  EXPECT_TRUE(HostAllowed("a.example.com", {".example.com"}));
  EXPECT_TRUE(HostAllowed("example.com:443", {".example.com"}));
  EXPECT_FALSE(HostAllowed("badexample.com", {".example.com"}));
  EXPECT_TRUE(HostAllowed("anything:1", {"*"}));
}

TEST(WebSocketKeyTest, IsSixteenBytesOfBase64) {
  EXPECT_TRUE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ=="));  // RFC 6455's example.
  EXPECT_FALSE(ValidWebSocketKey("!!!"));
  EXPECT_FALSE(ValidWebSocketKey(""));
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ="));
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ!="));
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZR=="));  // Bits past the 16 bytes.
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ==x"));
}

// ---------------------------------------------------------------- Admission

TEST(AdmissionTest, CapsPerAddressAndInAll) {
  auto admission =
      std::make_shared<Admission>(Admission::Limits{.max_connections = 3, .max_per_address = 2});
  absl::StatusOr<Admission::Ticket> a1 = admission->Admit("10.0.0.1", nullptr);
  absl::StatusOr<Admission::Ticket> a2 = admission->Admit("10.0.0.1", nullptr);
  ASSERT_TRUE(a1.ok() && a2.ok());
  a1->Settle();
  a2->Settle();
  absl::StatusOr<Admission::Ticket> a3 = admission->Admit("10.0.0.1", nullptr);
  EXPECT_TRUE(absl::IsResourceExhausted(a3.status()));
  EXPECT_THAT(a3.status().message(), HasSubstr("address"));
  EXPECT_EQ(chat::ReasonOf(a3.status()), Admission::kMaxPerAddress);
  absl::StatusOr<Admission::Ticket> b1 = admission->Admit("10.0.0.2", nullptr);
  ASSERT_TRUE(b1.ok());
  b1->Settle();
  // Full, and nothing pending to evict.
  absl::StatusOr<Admission::Ticket> c1 = admission->Admit("10.0.0.3", nullptr);
  EXPECT_TRUE(absl::IsResourceExhausted(c1.status()));
  EXPECT_EQ(chat::ReasonOf(c1.status()), Admission::kMaxConnections);
  EXPECT_EQ(admission->counts().refused, 2u);
  // A place given back is taken again.
  *a1 = Admission::Ticket();
  EXPECT_TRUE(admission->Admit("10.0.0.3", nullptr).ok());
}

TEST(AdmissionTest, TheOldestPendingConnectionMakesRoom) {
  auto admission =
      std::make_shared<Admission>(Admission::Limits{.max_connections = 2, .max_per_address = 10});
  std::vector<std::string> evicted;
  absl::StatusOr<Admission::Ticket> slow1 =
      admission->Admit("10.0.0.9", [&] { evicted.push_back("slow1"); });
  absl::StatusOr<Admission::Ticket> slow2 =
      admission->Admit("10.0.0.9", [&] { evicted.push_back("slow2"); });
  ASSERT_TRUE(slow1.ok() && slow2.ok());
  slow2->Settle();  // Its request arrived: no longer evictable.
  absl::StatusOr<Admission::Ticket> fresh = admission->Admit("10.0.0.1", nullptr);
  ASSERT_TRUE(fresh.ok());
  EXPECT_THAT(evicted, ElementsAre("slow1"));
  EXPECT_EQ(admission->counts().connections, 2u);
  EXPECT_EQ(admission->counts().evicted, 1u);
  // The evicted connection's own release later changes nothing.
  *slow1 = Admission::Ticket();
  EXPECT_EQ(admission->counts().connections, 2u);
  EXPECT_EQ(admission->counts().pending, 1u);
  fresh->Settle();
  EXPECT_EQ(admission->counts().pending, 0u);
  // Full again, with nothing pending: the next one is refused, not let in.
  EXPECT_TRUE(absl::IsResourceExhausted(admission->Admit("10.0.0.2", nullptr).status()));
  EXPECT_EQ(admission->counts().connections, 2u);
}

TEST(AdmissionTest, EvictionKeepsTheCapUnderAFlood) {
  auto admission =
      std::make_shared<Admission>(Admission::Limits{.max_connections = 3, .max_per_address = 100});
  std::vector<Admission::Ticket> held;
  int evictions = 0;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<Admission::Ticket> t = admission->Admit("10.0.0.9", [&] { ++evictions; });
    ASSERT_TRUE(t.ok());
    held.push_back(*std::move(t));
    EXPECT_LE(admission->counts().connections, 3u);
    EXPECT_LE(admission->counts().pending, 3u);
  }
  EXPECT_EQ(evictions, 17);
}

// -------------------------------------------------------------------- Pages

TEST(PagesTest, RoomNameCannotInjectMarkupOrScript) {
  const std::string evil = R"(x"</script><script>alert(1)</script>&')";
  const std::string page = RoomPage(evil);
  EXPECT_THAT(page, Not(HasSubstr("<script>alert")));
  EXPECT_THAT(page, Not(HasSubstr("</script><script>")));
  EXPECT_THAT(page, HasSubstr(R"(const roomName = "x\"\u003c/script\u003e)"));
  EXPECT_THAT(page, HasSubstr("<title>Chat: x&quot;&lt;/script&gt;"));
  EXPECT_EQ(ScriptStringLiteral("a\xE2\x80\xA8"
                                "b\n"),
            R"("a\u2028b\n")");
}

TEST(PagesTest, LobbyLeadsToRooms) {
  EXPECT_THAT(LobbyPage(), HasSubstr(R"("/chat/" + encodeURIComponent(name) + "/")"));
}

// ---------------------------------------------------------------- LayerEvent

TEST(LayerEventTest, ParsesOnceAndMemoizesFrames) {
  LayerEventPtr e =
      LayerEvent::FromWire("chat.message", R"({"type":"chat.message","message":"hi"})");
  EXPECT_EQ(e->StringField("message"), "hi");
  int builds = 0;
  Frame a = e->Memo("k", [&] {
    ++builds;
    return std::string("frame");
  });
  Frame b = e->Memo("k", [&] {
    ++builds;
    return std::string("other");
  });
  EXPECT_EQ(builds, 1);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(*b, "frame");
}

TEST(LayerEventTest, MakeSerializesTypeAndFields) {
  LayerEventPtr e = LayerEvent::Make("chat.message", {{"message", "x"}});
  EXPECT_EQ(e->json(), R"({"type":"chat.message","message":"x"})");
  EXPECT_FALSE(LayerEvent::FromWire("t", "[oops")->StringField("message").has_value());
}

// --------------------------------------------------- Consumers over a layer

// A connection as the consumer sees it, without a socket; callbacks run inline.
class FakeConnection : public Connection, public ChannelSink {
 public:
  explicit FakeConnection(Consumer* consumer) : consumer_(consumer) {}
  void Accept(const std::string& subprotocol) override {
    accepted = true;
    accepted_subprotocol = subprotocol;
  }
  void Close(uint16_t code) override { closed = code; }
  void SendFrame(Frame text) override { frames.push_back(std::move(text)); }
  std::function<void()> Bind(std::function<void()> fn) override { return fn; }
  void CountDrop(const char* reason) override { drops.push_back(reason); }
  void OnEvent(const LayerEventPtr& event) override { consumer_->Dispatch(event); }

  std::vector<std::string> Texts() const {
    std::vector<std::string> out;
    for (const auto& f : frames) out.push_back(*f);
    return out;
  }

  Consumer* consumer_;
  bool accepted = false;
  std::string accepted_subprotocol;
  int closed = 0;
  std::vector<Frame> frames;
  std::vector<std::string> drops;
};

struct Client {
  std::unique_ptr<Consumer> consumer;
  std::shared_ptr<FakeConnection> connection;
};

Client Connect(Layer& layer, std::unique_ptr<Consumer> consumer, const std::string& room) {
  Client c{std::move(consumer), nullptr};
  c.connection = std::make_shared<FakeConnection>(c.consumer.get());
  Scope scope;
  scope.url_route["room_name"] = room;
  c.consumer->Attach(c.connection.get(), &layer, scope, layer.Register(c.connection, 0));
  c.consumer->Connect();
  return c;
}

TEST(ChatConsumerTest, MessagesReachEveryMemberOfTheRoomOnly) {
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>());
  Client a = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  Client b = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  Client other = Connect(layer, std::make_unique<ChatConsumer>(), "kitchen");
  ASSERT_TRUE(a.connection->accepted && b.connection->accepted);
  a.consumer->Receive(R"({"message":"hello"})");
  EXPECT_THAT(a.connection->Texts(), ElementsAre(R"({"message":"hello"})"));
  EXPECT_THAT(b.connection->Texts(), ElementsAre(R"({"message":"hello"})"));
  EXPECT_THAT(other.connection->Texts(), IsEmpty());
  // One frame, built once, shared by both recipients.
  EXPECT_EQ(a.connection->frames[0].get(), b.connection->frames[0].get());
}

TEST(ChatConsumerTest, BadFrameGetsAnErrorAndTheRoomNothing) {
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>());
  Client a = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  Client b = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  a.consumer->Receive("not json");
  ASSERT_EQ(a.connection->frames.size(), 1u);
  EXPECT_THAT(*a.connection->frames[0], HasSubstr("bad_frame"));
  EXPECT_THAT(b.connection->frames, IsEmpty());
  EXPECT_THAT(a.connection->drops, ElementsAre("bad_frame"));
}

TEST(ChatConsumerTest, InvalidGroupRefusesTheHandshake) {
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>());
  Client c = Connect(layer, std::make_unique<ChatConsumer>(), std::string(120, 'a'));
  EXPECT_FALSE(c.connection->accepted);
  EXPECT_EQ(c.connection->closed, kCloseNormal);
}

TEST(ChatConsumerTest, NotDeliveredWhenTheLayerRefuses) {
  // A layer that is down: sends fail with UNAVAILABLE.
  class DownLayer : public MemoryLayer {
   public:
    DownLayer() : MemoryLayer("edge-1!", std::make_shared<InlineLoops>()) {}
    void GroupSend(const std::string&, LayerEventPtr, DoneCallback done) override {
      done(absl::UnavailableError("the chat service is unavailable"));
    }
  } layer;
  Client a = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  a.consumer->Receive(R"({"message":"lost?"})");
  ASSERT_EQ(a.connection->frames.size(), 1u);
  EXPECT_THAT(*a.connection->frames[0], HasSubstr(R"("error":"not_delivered")"));
  EXPECT_THAT(*a.connection->frames[0], HasSubstr(R"("undelivered":"lost?")"));
}

TEST(ChatConsumerTest, UnconfirmedWhenTheLinkBrokeAfterSending) {
  // A layer whose link broke after the message went out: the outcome is unknown.
  class LostLayer : public MemoryLayer {
   public:
    LostLayer() : MemoryLayer("edge-1!", std::make_shared<InlineLoops>()) {}
    void GroupSend(const std::string&, LayerEventPtr, DoneCallback done) override {
      done(absl::UnknownError("the link to groupsvc was lost"));
    }
  } layer;
  Client a = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  a.consumer->Receive(R"({"message":"maybe"})");
  ASSERT_EQ(a.connection->frames.size(), 1u);
  EXPECT_THAT(*a.connection->frames[0], HasSubstr(R"("error":"unconfirmed")"));
  EXPECT_THAT(*a.connection->frames[0], HasSubstr(R"("undelivered":"maybe")"));
  EXPECT_THAT(a.connection->drops, ElementsAre("unconfirmed"));
}

TEST(ConsumerTest, DispatchesByTypeAndCountsUnknownTypes) {
  class Probe : public Consumer {
   public:
    Probe() {
      On("chat.message",
         [this](const LayerEvent& e) { got.push_back("chat:" + *e.StringField("message")); });
      On("user.joined", [this](const LayerEvent&) { got.push_back("joined"); });
    }
    std::vector<std::string> got;
  };
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>());
  auto probe = std::make_unique<Probe>();
  Probe* p = probe.get();
  Client c = Connect(layer, std::move(probe), "x");
  p->Dispatch(LayerEvent::Make("user.joined", {}));
  p->Dispatch(LayerEvent::Make("chat.message", {{"message", "m"}}));
  p->Dispatch(LayerEvent::Make("no.such", {}));
  EXPECT_THAT(p->got, ElementsAre("joined", "chat:m"));
  EXPECT_THAT(c.connection->drops, ElementsAre("no_handler"));
}

// That the session calls LeaveGroups when a socket closes is tested end to end
// (SingleEdgeTest.AClosedSocketLeavesItsGroups).
TEST(ConsumerTest, LeaveGroupsLeavesEveryGroupJoined) {
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>());
  Client a = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  Client b = Connect(layer, std::make_unique<ChatConsumer>(), "lobby");
  EXPECT_EQ(layer.local_groups(), 1u);
  a.consumer->Disconnect(kCloseNormal);
  a.consumer->LeaveGroups();
  b.consumer->Receive(R"({"message":"after"})");
  EXPECT_THAT(a.connection->frames, IsEmpty());
  EXPECT_EQ(b.connection->frames.size(), 1u);
  b.consumer->LeaveGroups();
  EXPECT_EQ(layer.local_groups(), 0u);
}

TEST(EchoConsumerTest, EchoesToTheSenderOnly) {
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>());
  Client a = Connect(layer, std::make_unique<EchoConsumer>(), "");
  EXPECT_TRUE(a.connection->accepted);
  a.consumer->Receive(R"({"message":"ping"})");
  EXPECT_THAT(a.connection->Texts(), ElementsAre(R"({"message":"ping"})"));
}

TEST(MemoryLayerTest, ValidatesAndRoutes) {
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>(), /*max_event_bytes=*/100);
  absl::Status status;
  layer.GroupAdd("bad group", "edge-1!c1", [&](absl::Status s) { status = s; });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  layer.GroupSend("g", LayerEvent::Make("t", {{"x", std::string(200, 'x')}}),
                  [&](absl::Status s) { status = s; });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  layer.Send("edge-1!nobody", LayerEvent::Make("t", {}), [&](absl::Status s) { status = s; });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
}

TEST(ChannelTableTest, NamesChannelsUnderItsPrefixAndTracksMemberships) {
  class CountingSink : public ChannelSink {
   public:
    void OnEvent(const LayerEventPtr&) override { ++events; }
    int events = 0;
  };
  ChannelTable table("edge-7.ab!", std::make_shared<InlineLoops>());
  auto sink = std::make_shared<CountingSink>();
  std::string c1 = table.Add(sink, 0);
  std::string c2 = table.Add(sink, 0);
  EXPECT_NE(c1, c2);
  EXPECT_EQ(c1.rfind("edge-7.ab!", 0), 0u);
  EXPECT_TRUE(table.Join("g", c1));
  EXPECT_FALSE(table.Join("g", c1));
  EXPECT_TRUE(table.Join("g", c2));
  EXPECT_EQ(table.AllMemberships().size(), 2u);
  EXPECT_TRUE(table.Leave("g", c1));
  EXPECT_FALSE(table.Leave("g", c1));
  table.Remove(c2);
  {
    ChannelTable::Handoff handoff(table);
    EXPECT_EQ(table.Deliver(std::vector<std::string>{c1, c2}, LayerEvent::Make("t", {}), handoff),
              1u);
  }
  EXPECT_EQ(sink->events, 1);
}

TEST(ChannelTableTest, AnOperatorsCloseReachesTheUsersChannelsInTheGroupOnly) {
  class ClosingSink : public ChannelSink {
   public:
    void OnEvent(const LayerEventPtr&) override {}
    void OnClose(uint16_t code, const std::string& reason) override {
      closes.push_back(absl::StrCat(code, " ", reason));
    }
    std::vector<std::string> closes;
  };
  ChannelTable table("e!", std::make_shared<InlineLoops>());
  auto lobby = std::make_shared<ClosingSink>();
  auto garden = std::make_shared<ClosingSink>();
  auto bob = std::make_shared<ClosingSink>();
  const std::string c1 = table.Add(lobby, 0), c2 = table.Add(garden, 0), c3 = table.Add(bob, 0);
  ASSERT_TRUE(table.SetConnection(c1, UserConnection{"ann", "Ann", "lobby"}));
  ASSERT_TRUE(table.SetConnection(c2, UserConnection{"ann", "Ann", "garden"}));
  ASSERT_TRUE(table.SetConnection(c3, UserConnection{"bob", "Bob", "garden"}));
  table.Join("chat_lobby", c1);
  table.Join("chat_garden", c2);
  table.Join("chat_garden", c3);
  EXPECT_EQ(table.CountConnections("ann"), 2u);
  EXPECT_EQ(table.CloseUser("ann", "chat_garden", 4011, "off topic"), 1u);
  EXPECT_THAT(garden->closes, ElementsAre("4011 off topic"));
  EXPECT_TRUE(lobby->closes.empty());
  EXPECT_TRUE(bob->closes.empty());
  EXPECT_TRUE(table.ClosedByOperator(c2));
  EXPECT_FALSE(table.ClosedByOperator(c1));
  EXPECT_EQ(table.CloseUser("ann", "", 4010, "bye"), 2u);
  EXPECT_THAT(lobby->closes, ElementsAre("4010 bye"));
  // Removing a channel hands back its connection (the layer ends it in groupsvc).
  std::optional<UserConnection> gone = table.Remove(c1);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->room, "lobby");
  EXPECT_FALSE(table.Remove(c1).has_value());
  EXPECT_EQ(table.CountConnections("ann"), 1u);
}

TEST(MemoryLayerTest, CapsAUsersConnectionsInThisProcess) {
  MemoryLayer layer("edge-1!", std::make_shared<InlineLoops>());
  class Nothing : public ChannelSink {
    void OnEvent(const LayerEventPtr&) override {}
  };
  auto sink = std::make_shared<Nothing>();
  std::vector<std::string> channels;
  std::vector<absl::Status> got;
  for (int i = 0; i < 3; ++i) {
    channels.push_back(layer.Register(sink, 0));
    layer.ConnectUser(channels.back(), UserConnection{"ann", "Ann", "lobby"}, 2,
                      [&](absl::Status s) { got.push_back(s); });
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].ok() && got[1].ok());
  EXPECT_EQ(got[2].code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(got[2].message()), HasSubstr("already has 2 connections"));
  layer.Unregister(channels[0]);
  layer.ConnectUser(channels[2], UserConnection{"ann", "Ann", "lobby"}, 2,
                    [&](absl::Status s) { got.push_back(s); });
  EXPECT_TRUE(got.back().ok()) << got.back();
}

// Loops that keep what is posted until Run(loop), and say which loop each
// handler ran on.
class RecordingLoops : public EventLoops {
 public:
  explicit RecordingLoops(size_t n) : queued_(n) {}
  size_t size() const override { return queued_.size(); }
  void Post(size_t loop, std::function<void()> fn) override {
    queued_.at(loop).push_back(std::move(fn));
  }
  size_t current() const override { return running_; }
  size_t posts(size_t loop) const { return queued_[loop].size(); }
  void Run(size_t loop) {
    running_ = loop;
    auto now = std::move(queued_[loop]);
    queued_[loop].clear();
    for (auto& fn : now) fn();
    running_ = kNone;
  }

 private:
  std::vector<std::vector<std::function<void()>>> queued_;
  size_t running_ = kNone;
};

class LoopSink : public ChannelSink {
 public:
  LoopSink(const RecordingLoops& loops, size_t loop) : loops_(loops), loop_(loop) {}
  void OnEvent(const LayerEventPtr& event) override {
    EXPECT_EQ(loops_.current(), loop_) << "an event ran off its channel's loop";
    seen.push_back(event->type());
  }
  std::vector<std::string> seen;

 private:
  const RecordingLoops& loops_;
  const size_t loop_;
};

TEST(ChannelTableTest, OneHandoffPerLoopWhateverTheRecipients) {
  auto loops = std::make_shared<RecordingLoops>(3);
  ChannelTable table("e!", loops);
  std::vector<std::shared_ptr<LoopSink>> sinks;
  std::vector<std::string> names;
  for (size_t i = 0; i < 10; ++i) {  // Loops 0 and 1 only.
    sinks.push_back(std::make_shared<LoopSink>(*loops, i % 2));
    names.push_back(table.Add(sinks.back(), i % 2));
  }
  {
    // A stream message with two deliveries, each to every channel.
    ChannelTable::Handoff handoff(table);
    EXPECT_EQ(table.Deliver(names, LayerEvent::Make("first", {}), handoff), 10u);
    EXPECT_EQ(table.Deliver(names, LayerEvent::Make("second", {}), handoff), 10u);
    EXPECT_EQ(loops->posts(0) + loops->posts(1), 0u) << "nothing is posted before the flush";
  }
  EXPECT_EQ(loops->posts(0), 1u);
  EXPECT_EQ(loops->posts(1), 1u);
  EXPECT_EQ(loops->posts(2), 0u);
  loops->Run(0);
  loops->Run(1);
  for (const auto& sink : sinks) EXPECT_THAT(sink->seen, ElementsAre("first", "second"));
}

// An in-process layer on two recording loops, with member a of "room" on
// loop 0 and member b on loop 1.
class TwoLoopRoomTest : public ::testing::Test {
 protected:
  TwoLoopRoomTest() {
    layer.GroupAdd("room", layer.Register(a, 0), nullptr);
    layer.GroupAdd("room", layer.Register(b, 1), nullptr);
  }
  std::shared_ptr<RecordingLoops> loops = std::make_shared<RecordingLoops>(2);
  MemoryLayer layer{"e!", loops};
  std::shared_ptr<LoopSink> a = std::make_shared<LoopSink>(*loops, 0);
  std::shared_ptr<LoopSink> b = std::make_shared<LoopSink>(*loops, 1);
};

TEST_F(TwoLoopRoomTest, GroupDeliveryReachesMembersOnTheirLoops) {
  layer.GroupSend("room", LayerEvent::Make("chat.message", {}), nullptr);
  EXPECT_TRUE(a->seen.empty() && b->seen.empty()) << "delivered inline, not on the loops";
  EXPECT_EQ(loops->posts(0), 1u);
  EXPECT_EQ(loops->posts(1), 1u);
  loops->Run(1);
  loops->Run(0);
  EXPECT_THAT(a->seen, ElementsAre("chat.message"));
  EXPECT_THAT(b->seen, ElementsAre("chat.message"));
}

TEST_F(TwoLoopRoomTest, ARoundOfSendsOnALoopIsHandedOffOnceBehindIt) {
  // A handler on loop 0 (a burst read from one socket) sends three messages.
  loops->Post(0, [&] {
    for (const char* type : {"m1", "m2", "m3"})
      layer.GroupSend("room", LayerEvent::Make(type, {}), nullptr);
  });
  loops->Run(0);
  EXPECT_EQ(loops->posts(0), 1u) << "one hand-off, behind the round";
  EXPECT_EQ(loops->posts(1), 0u);
  loops->Run(0);  // The hand-off: each loop's share, once.
  EXPECT_EQ(loops->posts(0), 1u);
  EXPECT_EQ(loops->posts(1), 1u);
  loops->Run(0);
  loops->Run(1);
  EXPECT_THAT(a->seen, ElementsAre("m1", "m2", "m3"));
  EXPECT_THAT(b->seen, ElementsAre("m1", "m2", "m3"));
}

}  // namespace
}  // namespace edge
