// End-to-end tests of the chat system: real groupsvc and edge binaries on
// loopback ports, real WebSockets and gRPC.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "edge/auth/token.h"
#include "gmock/gmock.h"
#include "groupsvc/v1/layer.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/client_frame.h"
#include "tests/support/http_get.h"
#include "tests/support/jwt_keys.h"
#include "tests/support/ws_client.h"

namespace chat::testing {
namespace {

using ::testing::HasSubstr;

std::string Chat(const std::string& m) { return absl::StrCat(R"({"message":")", m, R"("})"); }

// An edge's metrics port (logged as metrics_port), by its public port.
absl::flat_hash_map<int, int>& MetricsPorts() {
  static auto* ports = new absl::flat_hash_map<int, int>();
  return *ports;
}

// Starts a process and returns it with the port it logged. Edges get a
// metrics port of their own (their default is fixed), noted in MetricsPorts().
std::unique_ptr<ChildProcess> StartLogged(std::vector<std::string> argv, int* port) {
  const bool edge = argv.front() == EDGE_BIN;
  if (edge) argv.push_back("--metrics_listen=127.0.0.1:0");
  auto p = ChildProcess::Start(std::move(argv));
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return nullptr;
  absl::StatusOr<int> got = (*p)->WaitForField(" listening ", "port", absl::Seconds(20));
  EXPECT_TRUE(got.ok()) << got.status();
  *port = got.value_or(0);
  if (edge && got.ok()) {
    absl::StatusOr<int> metrics =
        (*p)->WaitForField(" listening ", "metrics_port", absl::Seconds(1));
    EXPECT_TRUE(metrics.ok()) << metrics.status();
    MetricsPorts()[*port] = metrics.value_or(0);
  }
  return *std::move(p);
}

// For an edge, `port` is its public port (its metrics port is looked up).
double MetricValue(int port, const std::string& line_prefix) {
  if (auto it = MetricsPorts().find(port); it != MetricsPorts().end()) port = it->second;
  absl::StatusOr<HttpReply> r = HttpGet("127.0.0.1", port, "/metrics");
  if (!r.ok()) return -1;
  // A sample line, not the "# HELP" line that also names the metric.
  size_t at = r->body.find("\n" + line_prefix + " ");
  if (at == std::string::npos) return -1;
  return std::stod(r->body.substr(at + line_prefix.size() + 2));
}

// A client in `room`'s chat; null (and a failure) if the handshake failed.
std::unique_ptr<WsClient> Join(int port, const std::string& room) {
  auto c = WsClient::Connect(port, absl::StrCat("/ws/chat/", room, "/"));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

class ChatSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // No warm-up at the first start: the edges attach before any message.
    groupsvc_ = StartLogged(
        {GROUPSVC_BIN, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0", "--warmup=0s"},
        &groupsvc_port_);
    ASSERT_NE(groupsvc_port_, 0);
    absl::StatusOr<int> metrics =
        groupsvc_->WaitForField(" listening ", "metrics_port", absl::Seconds(5));
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    groupsvc_metrics_port_ = *metrics;
    // Both threading settings in every cross-edge test: production runs two.
    edge_a_ = StartEdge("edge-a", &port_a_, 1);
    edge_b_ = StartEdge("edge-b", &port_b_, 2);
    ASSERT_TRUE(WaitReady(port_a_, true));
    ASSERT_TRUE(WaitReady(port_b_, true));
  }

  std::unique_ptr<ChildProcess> StartEdge(const std::string& id, int* port, int threads) {
    return StartLogged(
        {EDGE_BIN, "--listen=127.0.0.1:0", absl::StrCat("--groupsvc=127.0.0.1:", groupsvc_port_),
         absl::StrCat("--edge_id=", id), "--max_queue_frames=256", "--grace=5s",
         absl::StrCat("--threads=", threads)},
        port);
  }

  groupsvc::v1::Group GetGroup(const std::string& name, grpc::Status* status) {
    auto stub = groupsvc::v1::ChannelLayer::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", groupsvc_port_), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    groupsvc::v1::GetGroupRequest request;
    request.set_name(name);
    groupsvc::v1::Group group;
    *status = stub->GetGroup(&context, request, &group);
    return group;
  }

  std::unique_ptr<ChildProcess> groupsvc_, edge_a_, edge_b_;
  int groupsvc_port_ = 0, groupsvc_metrics_port_ = 0, port_a_ = 0, port_b_ = 0;
};

TEST_F(ChatSystemTest, ClientsOnTwoEdgesChatInSenderOrder) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_b_, "lobby");
  auto carol = Join(port_b_, "lobby");
  auto dave = Join(port_a_, "kitchen");
  ASSERT_TRUE(alice && bob && carol && dave);
  constexpr int kMessages = 100;
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(alice->SendText(Chat(absl::StrCat("m", i))));
  for (WsClient* c : {alice.get(), bob.get(), carol.get()}) {
    for (int i = 0; i < kMessages; ++i) {
      absl::StatusOr<std::string> frame = c->Read();
      ASSERT_TRUE(frame.ok()) << frame.status() << " at " << i;
      EXPECT_EQ(*frame, Chat(absl::StrCat("m", i)));
    }
  }
  // Bob answers; Alice hears it across edges.
  ASSERT_TRUE(bob->SendText(Chat("hi alice")));
  absl::StatusOr<std::string> frame = alice->Read();
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(*frame, Chat("hi alice"));
  // Other rooms hear nothing.
  EXPECT_EQ(dave->Read(absl::Milliseconds(300)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ChatSystemTest, GroupsvcSeesOneMemberPerSocketOnItsEdge) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_b_, "lobby");
  grpc::Status status;
  groupsvc::v1::Group group = GetGroup("chat_lobby", &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(group.members_size(), 2);
  std::vector<std::string> edges = {group.members(0).edge_id(), group.members(1).edge_id()};
  EXPECT_THAT(edges, ::testing::UnorderedElementsAre("edge-a", "edge-b"));
}

TEST_F(ChatSystemTest, EchoAnswersOnlyTheSender) {
  auto echo = WsClient::Connect(port_a_, "/ws/echo/");
  ASSERT_TRUE(echo.ok());
  ASSERT_TRUE((*echo)->SendText(Chat("ping")));
  absl::StatusOr<std::string> frame = (*echo)->Read();
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(*frame, Chat("ping"));
}

TEST_F(ChatSystemTest, OversizedFrameClosesWith1009) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_a_, "lobby");
  // A read is pending while we write, as in a browser.
  EXPECT_EQ(alice->Read(absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  alice->SendText(Chat(std::string(70 << 10, 'x')));
  EXPECT_EQ(alice->WaitClosed(), 1009);
  // The room is unaffected.
  auto carol = Join(port_a_, "lobby");
  ASSERT_TRUE(carol->SendText(Chat("still here")));
  absl::StatusOr<std::string> frame = bob->Read();
  ASSERT_TRUE(frame.ok()) << frame.status();
  EXPECT_EQ(*frame, Chat("still here"));
}

TEST_F(ChatSystemTest, BadJsonGetsAnErrorFrameAndTheRoomNothing) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_b_, "lobby");
  for (const char* bad : {"not json", R"({"msg": "x"})", R"({"message": 42})", "[]"}) {
    ASSERT_TRUE(alice->SendText(bad));
    absl::StatusOr<std::string> frame = alice->Read();
    ASSERT_TRUE(frame.ok()) << frame.status();
    EXPECT_THAT(*frame, HasSubstr(R"("error":"bad_frame")")) << bad;
  }
  EXPECT_EQ(bob->Read(absl::Milliseconds(300)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(alice->SendText(Chat("fine now")));
  absl::StatusOr<std::string> frame = bob->Read();
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(*frame, Chat("fine now"));
  EXPECT_GE(MetricValue(port_a_, R"(edge_drops_total{reason="bad_frame"})"), 4);
}

TEST_F(ChatSystemTest, BinaryFrameClosesWith1003) {
  auto alice = Join(port_a_, "lobby");
  ASSERT_TRUE(alice->SendBinary("\x01\x02"));
  EXPECT_EQ(alice->WaitClosed(), 1003);
}

// Bytes written straight to the client's socket, past its WebSocket layer.
void WriteRaw(WsClient& client, const std::string& bytes) {
  boost::asio::write(client.stream().next_layer().socket(), boost::asio::buffer(bytes));
}

TEST_F(ChatSystemTest, ProtocolErrorsCloseWith1002AndBadUtf8With1007) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_a_, "lobby");
  auto carol = Join(port_b_, "lobby");
  WriteRaw(*alice, ClientFrame(0x1, Chat("unmasked"), true, /*masked=*/false));
  EXPECT_EQ(alice->WaitClosed(), 1002);
  WriteRaw(*bob, ClientFrame(0x1, R"({"message":"caf)"
                                  "\xc3"
                                  R"("})"));
  EXPECT_EQ(bob->WaitClosed(), 1007);
  EXPECT_GE(MetricValue(port_a_, R"(edge_drops_total{reason="protocol_error"})"), 2);
  // Neither reached the room, and the room goes on.
  auto dave = Join(port_a_, "lobby");
  ASSERT_TRUE(dave->SendText(Chat("still here")));
  EXPECT_EQ(carol->Read().value_or(""), Chat("still here"));
}

TEST_F(ChatSystemTest, FragmentedPipelinedAndSplitFramesArriveWholeInOrder) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_b_, "lobby");
  bool ponged = false;
  alice->stream().control_callback(
      [&](boost::beast::websocket::frame_type kind, boost::beast::string_view payload) {
        if (kind == boost::beast::websocket::frame_type::pong && payload == "are you there") {
          ponged = true;
        }
      });
  // One write: a message in two fragments with a ping between them, then another.
  const std::string first = Chat("hello room");
  WriteRaw(*alice, ClientFrame(0x1, first.substr(0, 7), /*fin=*/false) +
                       ClientFrame(0x9, "are you there") + ClientFrame(0x0, first.substr(7)) +
                       ClientFrame(0x1, Chat("second")));
  // A third, its frame split over two writes.
  const std::string third = ClientFrame(0x1, Chat(std::string(5000, '3')));
  WriteRaw(*alice, third.substr(0, 3000));
  absl::SleepFor(absl::Milliseconds(100));
  WriteRaw(*alice, third.substr(3000));
  EXPECT_EQ(bob->Read().value_or(""), first);
  EXPECT_EQ(bob->Read().value_or(""), Chat("second"));
  EXPECT_EQ(bob->Read().value_or(""), Chat(std::string(5000, '3')));
  // The sender hears its own messages, and the pong on the way.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(alice->Read().ok());
  EXPECT_TRUE(ponged);
}

TEST_F(ChatSystemTest, MessagesReadTogetherReachGroupsvcInOneStreamMessage) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_b_, "lobby");
  ASSERT_TRUE(alice && bob);
  const double before = MetricValue(groupsvc_metrics_port_, "groupsvc_stream_messages_in_total");
  ASSERT_GE(before, 0);
  std::string burst;
  for (int i = 0; i < 20; ++i) burst += ClientFrame(0x1, Chat(absl::StrCat("b", i)));
  WriteRaw(*alice, burst);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(bob->Read().value_or(""), Chat(absl::StrCat("b", i)));
  // edge-a read the twenty frames at once, so their group_sends share one
  // stream message (not the first alone and the rest behind it).
  EXPECT_EQ(MetricValue(groupsvc_metrics_port_, "groupsvc_stream_messages_in_total") - before, 1);
}

TEST_F(ChatSystemTest, UnknownPathsAndRoomsAre404BeforeTheUpgrade) {
  // The last one is \w+ but makes a group name over 99 characters.
  for (const std::string& path :
       std::vector<std::string>{"/ws/chat/a-b/", "/ws/chat/lobby", "/ws/nope/", "/ws/chat/%3Cx%3E/",
                                "/ws/chat/" + std::string(95, 'r') + "/"}) {
    auto c = WsClient::Connect(port_a_, path);
    ASSERT_FALSE(c.ok()) << path;
    EXPECT_EQ(WsClient::RefusedStatus(c.status()), 404) << path << " " << c.status();
  }
}

TEST_F(ChatSystemTest, ForeignOriginsAre403AndMissingOriginIsAccepted) {
  auto evil = WsClient::Connect(port_a_, "/ws/chat/lobby/", {{"Origin", "http://evil.test"}});
  ASSERT_FALSE(evil.ok());
  EXPECT_EQ(WsClient::RefusedStatus(evil.status()), 403);
  auto own = WsClient::Connect(port_a_, "/ws/chat/lobby/",
                               {{"Origin", absl::StrCat("http://127.0.0.1:", port_a_)}});
  EXPECT_TRUE(own.ok()) << own.status();
  auto native = WsClient::Connect(port_a_, "/ws/chat/lobby/");
  EXPECT_TRUE(native.ok()) << native.status();
}

TEST_F(ChatSystemTest, PagesHealthAndMetrics) {
  absl::StatusOr<HttpReply> r = HttpGet("127.0.0.1", port_a_, "/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->headers["location"], "/chat/");
  r = HttpGet("127.0.0.1", port_a_, "/chat/");
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->body, HasSubstr("room-name-input"));
  r = HttpGet("127.0.0.1", port_a_, "/chat/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/");
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->body, ::testing::Not(HasSubstr("<img src=x")));
  EXPECT_THAT(r->body, HasSubstr("&lt;img src=x onerror=alert(1)&gt;"));
  EXPECT_THAT(r->body,
              HasSubstr(R"(const roomName = "\"\u003e\u003cimg src=x onerror=alert(1)\u003e";)"));
  // A decoded '/' cannot be part of a room name (as with Django's <str:...>).
  EXPECT_EQ(HttpGet("127.0.0.1", port_a_, "/chat/a%2Fb/")->status, 404);
  EXPECT_EQ(HttpGet("127.0.0.1", port_a_, "/nope")->status, 404);
  EXPECT_EQ(HttpGet("127.0.0.1", port_a_, "/healthz")->status, 200);
  EXPECT_EQ(HttpGet("127.0.0.1", port_a_, "/readyz")->status, 200);
  auto alice = Join(port_a_, "lobby");
  EXPECT_EQ(MetricValue(port_a_, "edge_connections"), 1);
  EXPECT_EQ(MetricValue(port_a_, "edge_layer_up"), 1);
  EXPECT_EQ(MetricValue(port_a_, "edge_groups"), 1);
}

TEST_F(ChatSystemTest, RoomWorksAgainAfterGroupsvcRestartsWithoutReconnecting) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_b_, "lobby");
  ASSERT_TRUE(alice->SendText(Chat("before")));
  ASSERT_EQ(bob->Read().value_or(""), Chat("before"));
  ASSERT_EQ(alice->Read().value_or(""), Chat("before"));

  groupsvc_->Signal(SIGKILL);
  ASSERT_TRUE(groupsvc_->WaitExit(absl::Seconds(5)).has_value());
  ASSERT_TRUE(WaitReady(port_a_, false));
  EXPECT_EQ(MetricValue(port_a_, "edge_layer_up"), 0);
  // "before" reached the room, but its confirmation may have died with
  // groupsvc: then, and only then, Alice hears it is unconfirmed.
  absl::StatusOr<std::string> early = alice->Read(absl::Milliseconds(300));
  if (early.ok()) {
    EXPECT_THAT(*early, HasSubstr(R"("error":"unconfirmed")"));
    EXPECT_THAT(*early, HasSubstr(R"("undelivered":"before")"));
  }
  // A message sent while it is down: the sender is told, nothing is silently lost.
  ASSERT_TRUE(alice->SendText(Chat("while down")));
  absl::StatusOr<std::string> error = alice->Read();
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_THAT(*error, HasSubstr(R"("error":"not_delivered")"));
  EXPECT_THAT(*error, HasSubstr(R"("undelivered":"while down")"));

  int port = 0;
  groupsvc_ = StartLogged(
      {GROUPSVC_BIN, absl::StrCat("--listen=127.0.0.1:", groupsvc_port_), "--metrics_listen="},
      &port);
  ASSERT_EQ(port, groupsvc_port_);
  ASSERT_TRUE(WaitReady(port_a_, true, absl::Seconds(15)));
  ASSERT_TRUE(WaitReady(port_b_, true, absl::Seconds(15)));
  // Both sockets stayed open; the edges re-registered their members. Within
  // groupsvc's warm-up the message arrives, and its sender hears that it
  // cannot be sure (another edge might not have re-attached yet).
  ASSERT_TRUE(alice->SendText(Chat("after")));
  EXPECT_EQ(bob->Read().value_or("nothing"), Chat("after"));
  // Her own copy and the ack's verdict, in either order.
  std::vector<std::string> at_alice = {alice->Read().value_or("nothing"),
                                       alice->Read().value_or("nothing")};
  std::sort(at_alice.begin(), at_alice.end());
  EXPECT_THAT(at_alice[0], HasSubstr(R"("error":"unconfirmed")"));
  EXPECT_THAT(at_alice[0], HasSubstr(R"("undelivered":"after")"));
  EXPECT_EQ(at_alice[1], Chat("after"));
  // After the warm-up, sends are confirmed again.
  absl::SleepFor(absl::Seconds(3));
  ASSERT_TRUE(bob->SendText(Chat("back")));
  EXPECT_EQ(alice->Read().value_or("nothing"), Chat("back"));
  EXPECT_EQ(bob->Read().value_or("nothing"), Chat("back"));
  EXPECT_EQ(bob->Read(absl::Milliseconds(300)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(alice->close_code().has_value());
}

TEST_F(ChatSystemTest, KilledEdgesMembersLeaveGroupsvc) {
  auto alice = Join(port_a_, "lobby");
  auto bob = Join(port_b_, "lobby");
  edge_b_->Signal(SIGKILL);
  ASSERT_TRUE(edge_b_->WaitExit(absl::Seconds(5)).has_value());
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  groupsvc::v1::Group group;
  grpc::Status status;
  do {
    group = GetGroup("chat_lobby", &status);
    if (status.ok() && group.members_size() == 1) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < deadline);
  ASSERT_EQ(group.members_size(), 1);
  EXPECT_EQ(group.members(0).edge_id(), "edge-a");
}

TEST_F(ChatSystemTest, StalledReaderIsClosedWhileOthersKeepReceiving) {
  auto sender = Join(port_a_, "lobby");
  auto reader = Join(port_b_, "lobby");
  auto stalled = Join(port_b_, "lobby");  // Never reads from here on.
  const std::string payload(30000, 'p');
  constexpr int kMessages = 600;  // ~18 MB: more than the socket buffers hold.
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(sender->SendText(Chat(absl::StrCat(i, "-", payload))));
    if (i % 50 == 49) {
      // The sender and the reader keep up; only `stalled` falls behind.
      for (int j = i - 49; j <= i; ++j) {
        ASSERT_TRUE(sender->Read().ok());
        absl::StatusOr<std::string> frame = reader->Read();
        ASSERT_TRUE(frame.ok()) << frame.status() << " at " << j;
        ASSERT_EQ(frame->rfind(absl::StrCat(R"({"message":")", j, "-"), 0), 0u) << j;
      }
    }
  }
  EXPECT_GE(MetricValue(port_b_, R"(edge_drops_total{reason="slow_reader"})"), 1);
  // Its close frame cannot get through a full socket, so the edge cuts it
  // within a few seconds.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (MetricValue(port_b_, "edge_connections") != 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(MetricValue(port_b_, "edge_connections"), 1);
  // The room goes on.
  ASSERT_TRUE(sender->SendText(Chat("after the stall")));
  EXPECT_EQ(reader->Read().value_or(""), Chat("after the stall"));
}

TEST_F(ChatSystemTest, SigtermClosesSocketsWith1001AndExitsZero) {
  auto alice = Join(port_a_, "lobby");
  edge_a_->Signal(SIGTERM);
  EXPECT_EQ(alice->WaitClosed(), 1001);
  std::optional<int> code = edge_a_->WaitExit(absl::Seconds(5));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << edge_a_->Output();
}

TEST(KeepaliveTest, SilentClientsAreDroppedAndAnsweringOnesKept) {
  int port = 0;
  auto edge = StartLogged({EDGE_BIN, "--listen=127.0.0.1:0", "--idle_timeout=1s"}, &port);
  ASSERT_NE(port, 0);
  auto answering = WsClient::Connect(port, "/ws/chat/lobby/");
  auto silent = WsClient::Connect(port, "/ws/chat/lobby/");
  ASSERT_TRUE(answering.ok() && silent.ok());
  // Only `answering` reads, so only it sees the pings and answers them.
  const absl::Time until = absl::Now() + absl::Seconds(3);
  while (absl::Now() < until) {
    absl::StatusOr<std::string> r = (*answering)->Read(absl::Milliseconds(100));
    ASSERT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  }
  EXPECT_FALSE((*answering)->close_code().has_value());
  // The silent one was dropped: its socket is gone.
  EXPECT_TRUE((*silent)->WaitClosed(absl::Seconds(2)).has_value());
  EXPECT_EQ(MetricValue(port, "edge_connections"), 1);
}

// One edge with its in-process layer, no groupsvc.
class SingleEdgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    edge_ =
        StartLogged({EDGE_BIN, "--listen=127.0.0.1:0", "--log_connections", "--threads=2"}, &port_);
    ASSERT_NE(port_, 0);
  }

  std::unique_ptr<ChildProcess> edge_;
  int port_ = 0;
};

TEST_F(SingleEdgeTest, FramesSentWithTheUpgradeRequestAreNotLost) {
  auto listener = Join(port_, "lobby");
  ASSERT_TRUE(listener);
  // A client that does not wait for the 101 before its first frame.
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)});
  boost::asio::write(
      socket, boost::asio::buffer(absl::StrCat("GET /ws/chat/lobby/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                               "Sec-WebSocket-Version: 13\r\n\r\n",
                                               ClientFrame(0x1, Chat("early bird")))));
  std::string response;
  boost::asio::read_until(socket, boost::asio::dynamic_buffer(response), "\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 101", 0), 0u) << response;
  EXPECT_EQ(listener->Read().value_or(""), Chat("early bird"));
}

TEST_F(SingleEdgeTest, FramesQueuedTogetherLeaveInOneWrite) {
  auto a = Join(port_, "lobby");
  auto b = Join(port_, "lobby");
  ASSERT_TRUE(a && b);
  const double frames_before = MetricValue(port_, "edge_frames_out_total");
  const double writes_before = MetricValue(port_, "edge_socket_writes_total");
  // Twenty messages in one TCP write: the edge reads them at once, and each
  // member's twenty frames go out together.
  std::string burst;
  for (int i = 0; i < 20; ++i) burst += ClientFrame(0x1, Chat(absl::StrCat("m", i)));
  WriteRaw(*a, burst);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(b->Read().value_or(""), Chat(absl::StrCat("m", i)));
    EXPECT_EQ(a->Read().value_or(""), Chat(absl::StrCat("m", i)));
  }
  EXPECT_EQ(MetricValue(port_, "edge_frames_out_total") - frames_before, 40);
  // One write per member (two if the burst arrived in two reads).
  EXPECT_LE(MetricValue(port_, "edge_socket_writes_total") - writes_before, 4);
}

TEST_F(SingleEdgeTest, ClientCloseIsAnsweredWithItsCode) {
  auto a = Join(port_, "lobby");
  ASSERT_TRUE(a);
  // Beast's close fails unless the server answers with a close frame.
  a->stream().next_layer().expires_after(std::chrono::seconds(5));
  boost::beast::error_code ec;
  a->stream().close(boost::beast::websocket::close_reason(
                        static_cast<boost::beast::websocket::close_code>(4000), "done here"),
                    ec);
  EXPECT_FALSE(ec) << ec.message();
  // The consumer heard the client's own code.
  absl::StatusOr<int> code = edge_->WaitForField(" ws_close ", "code", absl::Seconds(5));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 4000);
  EXPECT_EQ(MetricValue(port_, "edge_connections"), 0);
}

TEST_F(SingleEdgeTest, InProcessLayerChatsWithoutGroupsvc) {
  auto a = Join(port_, "lobby");
  auto b = Join(port_, "lobby");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->SendText(Chat("solo")));
  EXPECT_EQ(b->Read().value_or(""), Chat("solo"));
  EXPECT_EQ(a->Read().value_or(""), Chat("solo"));
  EXPECT_EQ(HttpGet("127.0.0.1", port_, "/readyz")->status, 200);
}

// ------------------------------------------------- issue 9: faults and bad input

// A raw TCP connection from `source` (any 127.x address), with a receive
// timeout, for requests no well-behaved client would send.
class RawConnection {
 public:
  RawConnection(int port, const std::string& source = "127.0.0.1") : socket_(ioc_) {
    socket_.open(boost::asio::ip::tcp::v4());
    socket_.bind({boost::asio::ip::make_address(source), 0});
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
    timeval tv{0, 200 * 1000};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  bool Send(const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes), ec);
    return !ec;
  }
  // Everything read until the server closes, or until `timeout`; `closed`
  // says which.
  std::string ReadAll(absl::Duration timeout, bool* closed = nullptr) {
    std::string out;
    const absl::Time deadline = absl::Now() + timeout;
    char buffer[4096];
    while (absl::Now() < deadline) {
      const ssize_t n = recv(socket_.native_handle(), buffer, sizeof(buffer), 0);
      if (n > 0) {
        out.append(buffer, n);
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        if (closed) *closed = true;
        return out;
      }
    }
    if (closed) *closed = false;
    return out;
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
};

std::string Upgrade(const std::string& host, const std::string& extra,
                    const std::string& key = "dGhlIHNhbXBsZSBub25jZQ==") {
  return absl::StrCat("GET /ws/chat/lobby/ HTTP/1.1\r\nHost: ", host,
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
                      "\r\nSec-WebSocket-Version: 13\r\n", extra, "\r\n");
}

// chat.v2 (a WebSocket subprotocol): typed frames with the author and the
// server's time; clients without it keep the tutorial's {"message"} frames.
TEST_F(ChatSystemTest, AChatV2ClientGetsTypedFramesBesideATutorialClient) {
  auto v1 = WsClient::Connect(port_a_, "/ws/chat/versions/");
  auto v2 = WsClient::Connect(port_b_, "/ws/chat/versions/",
                              {{"Sec-WebSocket-Protocol", "chat.v1, chat.v2"}});
  ASSERT_TRUE(v1.ok() && v2.ok());
  // On joining, a v2 client hears who is here (no one signed in) and where
  // the room's history stands (nothing yet); a tutorial client hears nothing.
  EXPECT_EQ((*v2)->Read().value_or(""), R"({"type":"presence","members":[]})");
  EXPECT_THAT(
      (*v2)->Read().value_or(""),
      ::testing::MatchesRegex(R"(\{"type":"joined","history":0,"offset":0,"epoch":"[a-z0-9]+"\})"));
  ASSERT_TRUE((*v1)->SendText(Chat("plain")));
  EXPECT_EQ((*v1)->Read().value_or(""), Chat("plain"));
  const std::string frame = (*v2)->Read().value_or("");
  EXPECT_THAT(frame, HasSubstr(R"("type":"message","message":"plain","user":{"anonymous":true})"));
  EXPECT_THAT(frame,
              ::testing::ContainsRegex(R"("ts":"20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9:.]+Z")"));
  // The room's history position: offsets 1, 2 under groupsvc's epoch.
  EXPECT_THAT(frame, ::testing::ContainsRegex(R"("offset":1,"epoch":"[a-z0-9]+")"));
  ASSERT_TRUE((*v2)->SendText(Chat("back")));
  EXPECT_EQ((*v1)->Read().value_or(""), Chat("back"));
  const std::string second = (*v2)->Read().value_or("");
  EXPECT_THAT(second, HasSubstr(R"("message":"back")"));
  EXPECT_THAT(second, HasSubstr(R"("offset":2,)"));
  // The 101 names the protocol chosen, and only when one was asked for.
  RawConnection asked(port_a_);
  ASSERT_TRUE(asked.Send(
      Upgrade(absl::StrCat("127.0.0.1:", port_a_), "Sec-WebSocket-Protocol: chat.v2\r\n")));
  const std::string response = asked.ReadAll(absl::Milliseconds(500));
  EXPECT_THAT(response, HasSubstr("101"));
  EXPECT_THAT(absl::AsciiStrToLower(response), HasSubstr("sec-websocket-protocol: chat.v2"));
  RawConnection plain(port_a_);
  ASSERT_TRUE(plain.Send(Upgrade(absl::StrCat("127.0.0.1:", port_a_), "")));
  EXPECT_THAT(absl::AsciiStrToLower(plain.ReadAll(absl::Milliseconds(500))),
              ::testing::Not(HasSubstr("sec-websocket-protocol")));
}

// Defect 1: with no grace, SIGTERM crashed (SIGSEGV) and clients saw 1006.
TEST(ShutdownTest, NoGraceStillClosesEveryClientWith1001AndExitsCleanly) {
  for (int run = 0; run < 4; ++run) {
    int port = 0;
    auto edge = StartLogged({EDGE_BIN, "--listen=127.0.0.1:0", "--grace=0s"}, &port);
    ASSERT_NE(port, 0);
    auto a = Join(port, "lobby");
    auto b = Join(port, "lobby");
    ASSERT_TRUE(a && b);
    edge->Signal(SIGTERM);
    EXPECT_EQ(a->WaitClosed(), 1001) << "run " << run;
    EXPECT_EQ(b->WaitClosed(), 1001) << "run " << run;
    std::optional<int> code = edge->WaitExit(absl::Seconds(5));
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << "run " << run << "\n" << edge->Output();
  }
}

// Defect 2: two edges started without --edge_id took the same id and evicted
// each other forever.
TEST_F(ChatSystemTest, TwoEdgesWithoutAnIdOnOneHostBothChat) {
  int port_c = 0, port_d = 0;
  auto c = StartLogged(
      {EDGE_BIN, "--listen=127.0.0.1:0", absl::StrCat("--groupsvc=127.0.0.1:", groupsvc_port_)},
      &port_c);
  auto d = StartLogged(
      {EDGE_BIN, "--listen=127.0.0.1:0", absl::StrCat("--groupsvc=127.0.0.1:", groupsvc_port_)},
      &port_d);
  ASSERT_TRUE(WaitReady(port_c, true) && WaitReady(port_d, true));
  auto on_c = Join(port_c, "pair");
  auto on_d = Join(port_d, "pair");
  ASSERT_TRUE(on_c && on_d);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(on_c->SendText(Chat(absl::StrCat("c", i))));
    EXPECT_EQ(on_d->Read().value_or(""), Chat(absl::StrCat("c", i)));
    EXPECT_EQ(on_c->Read().value_or(""), Chat(absl::StrCat("c", i)));
  }
  absl::SleepFor(absl::Milliseconds(300));
  // Four edges attached once each (a and b from the fixture), none replaced.
  const std::string log = groupsvc_->Output();
  size_t attached = 0;
  for (size_t at = log.find(" edge_attached "); at != std::string::npos;
       at = log.find(" edge_attached ", at + 1)) {
    ++attached;
  }
  EXPECT_EQ(attached, 4u) << log;
  EXPECT_THAT(log, ::testing::Not(HasSubstr("edge_replaced")));
}

// Defect 7: the Host header was trusted (DNS rebinding), the key unchecked,
// and refusals quoted Beast's internals.
TEST_F(SingleEdgeTest, UpgradesAreCheckedBeforeTheHandshake) {
  struct Case {
    std::string request;
    std::string status;
    std::string body;
  };
  const std::string own = absl::StrCat("127.0.0.1:", port_);
  const std::vector<Case> cases = {
      {Upgrade("evil.com", "Origin: http://evil.com\r\n"), "HTTP/1.1 403", "host not allowed"},
      {Upgrade(own, absl::StrCat("Origin: http://", own, ".evil.com\r\n")), "HTTP/1.1 403",
       "origin not allowed"},
      {Upgrade(own, absl::StrCat("Origin: ftp://", own, "\r\n")), "HTTP/1.1 403",
       "origin not allowed"},
      {Upgrade(own, "", "!!!"), "HTTP/1.1 400", "Sec-WebSocket-Key must be 16 random bytes"},
      {absl::StrCat(
           "GET /ws/chat/lobby/ HTTP/1.1\r\nHost: ", own,
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"),
       "HTTP/1.1 426", "WebSocket version 13 is required"},
  };
  for (const Case& c : cases) {
    RawConnection raw(port_);
    ASSERT_TRUE(raw.Send(c.request));
    const std::string reply = raw.ReadAll(absl::Seconds(3));
    EXPECT_EQ(reply.rfind(c.status, 0), 0u) << c.request << "\n" << reply;
    EXPECT_THAT(reply, HasSubstr(c.body)) << c.request;
  }
  // The same upgrade from an allowed host and origin works.
  RawConnection ok(port_);
  ASSERT_TRUE(ok.Send(Upgrade(own, absl::StrCat("Origin: http://", own, "\r\n"))));
  EXPECT_EQ(ok.ReadAll(absl::Milliseconds(500)).rfind("HTTP/1.1 101", 0), 0u);
  EXPECT_EQ(MetricValue(port_, R"(edge_http_errors_total{status="403"})"), 3);
}

TEST_F(SingleEdgeTest, MetricsAreServedOnTheirOwnPortOnly) {
  EXPECT_EQ(HttpGet("127.0.0.1", port_, "/metrics")->status, 404);
  const int metrics_port = MetricsPorts()[port_];
  absl::StatusOr<HttpReply> metrics = HttpGet("127.0.0.1", metrics_port, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body, HasSubstr("edge_connections"));
  EXPECT_EQ(HttpGet("127.0.0.1", metrics_port, "/chat/")->status, 404);
}

// Defect 6: no caps, 30 s to send a request, and a frame trickled byte by
// byte kept a socket alive forever.
TEST(LimitsTest, ConnectionsPerAddressAreCappedWith503) {
  int port = 0;
  auto edge = StartLogged({EDGE_BIN, "--listen=127.0.0.1:0", "--max_connections_per_ip=2"}, &port);
  ASSERT_NE(port, 0);
  auto a = Join(port, "lobby");
  auto b = Join(port, "lobby");
  ASSERT_TRUE(a && b);
  RawConnection third(port);
  third.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const std::string reply = third.ReadAll(absl::Seconds(2));
  EXPECT_EQ(reply.rfind("HTTP/1.1 503", 0), 0u) << reply;
  EXPECT_THAT(reply, HasSubstr("too many connections from this address"));
  // Another address still gets in.
  RawConnection other(port, "127.0.0.2");
  other.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(other.ReadAll(absl::Seconds(2)).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(MetricValue(port, R"(edge_connections_refused_total{reason="max_per_address"})"), 1);
}

TEST(LimitsTest, SlowRequestsAndTrickledFramesAreCut) {
  int port = 0;
  auto edge = StartLogged({EDGE_BIN, "--listen=127.0.0.1:0", "--header_timeout=1s",
                           "--frame_timeout=1s", "--idle_timeout=60s"},
                          &port);
  ASSERT_NE(port, 0);
  // A request that never ends is closed after the header timeout.
  RawConnection slow(port);
  slow.Send("GET /chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  const absl::Time start = absl::Now();
  bool closed = false;
  slow.ReadAll(absl::Seconds(4), &closed);
  EXPECT_TRUE(closed);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  // A frame sent one byte at a time is closed with 1008 after the frame timeout.
  RawConnection trickle(port);
  trickle.Send(Upgrade(absl::StrCat("127.0.0.1:", port), ""));
  ASSERT_EQ(trickle.ReadAll(absl::Milliseconds(300)).rfind("HTTP/1.1 101", 0), 0u);
  const std::string frame = ClientFrame(0x1, Chat("a message that takes forever to arrive"));
  std::string reply;
  for (size_t i = 0; i + 1 < frame.size() && absl::Now() - start < absl::Seconds(8); ++i) {
    if (!trickle.Send(frame.substr(i, 1))) break;
    reply += trickle.ReadAll(absl::Milliseconds(150), &closed);
    if (closed) break;
  }
  EXPECT_TRUE(closed);
  // First the tutorial's page's line (a short text frame: 0x81, length), then
  // the close frame: 0x88, length, the code 1008 (0x03F0), the same words.
  ASSERT_GE(reply.size(), 4u);
  ASSERT_EQ(reply[0], '\x81') << reply;
  size_t text_length = static_cast<unsigned char>(reply[1]);
  size_t header = 2;
  if (text_length == 126) {  // A 16-bit length follows.
    text_length = static_cast<unsigned char>(reply[2]) << 8 | static_cast<unsigned char>(reply[3]);
    header = 4;
  }
  EXPECT_THAT(reply.substr(header, text_length),
              HasSubstr(R"("message":"[disconnected] a message took too long to arrive")"));
  const std::string close = reply.substr(header + text_length);
  ASSERT_GE(close.size(), 4u) << reply;
  EXPECT_EQ(close[0], '\x88');
  EXPECT_EQ(close.substr(2, 2), std::string("\x03\xf0", 2));
  EXPECT_EQ(close.substr(4), "a message took too long to arrive");
}

// While groupsvc is away a browser is still accepted at once (its membership
// is kept and replayed), and once groupsvc listens the room works within half
// a second.
TEST(LayerDownTest, BrowsersAreAcceptedBeforeGroupsvcStartsAndChatOnceItDoes) {
  int groupsvc_port = 0;
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor probe(
        ioc, {boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(0)});
    groupsvc_port = probe.local_endpoint().port();
  }
  int port = 0;
  auto edge = StartLogged(
      {EDGE_BIN, "--listen=127.0.0.1:0", absl::StrCat("--groupsvc=127.0.0.1:", groupsvc_port)},
      &port);
  ASSERT_NE(port, 0);
  absl::SleepFor(absl::Seconds(2));  // Long enough for backoff to grow, were it uncapped.
  const absl::Time before = absl::Now();
  auto a = Join(port, "early");
  auto b = Join(port, "early");
  ASSERT_TRUE(a && b);
  EXPECT_LT(absl::Now() - before, absl::Seconds(1));
  ASSERT_TRUE(a->SendText(Chat("too soon")));
  EXPECT_THAT(a->Read().value_or(""), HasSubstr(R"("error":"not_delivered")"));
  int got_port = 0;
  auto groupsvc = StartLogged(
      {GROUPSVC_BIN, absl::StrCat("--listen=127.0.0.1:", groupsvc_port), "--metrics_listen="},
      &got_port);
  ASSERT_EQ(got_port, groupsvc_port);
  const absl::Time up = absl::Now();
  ASSERT_TRUE(WaitReady(port, true, absl::Seconds(5)));
  EXPECT_LT(absl::Now() - up, absl::Milliseconds(700));
  ASSERT_TRUE(a->SendText(Chat("now")));
  EXPECT_EQ(b->Read().value_or(""), Chat("now"));
}

// Issue 9, defect 9: the unit test of this called LeaveGroups itself.
TEST_F(SingleEdgeTest, AClosedSocketLeavesItsGroups) {
  auto a = Join(port_, "stays");
  auto b = Join(port_, "leaves");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(MetricValue(port_, "edge_groups"), 2);
  b->Close();
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (MetricValue(port_, "edge_groups") != 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(MetricValue(port_, "edge_groups"), 1);
}

// The edge binary with --auth=required: a token minted by `edge --mint_token`
// chats, none is 401; --auth=required without a secret does not start.
TEST(EdgeAuthTest, RequiredTokensFromMintTokenAndNoneIs401) {
  const std::string dir = ::testing::TempDir();
  const std::string secret = absl::StrCat(dir, "/jwt-secret");
  {
    FILE* f = fopen(secret.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("e2e-secret-0123456789abcdef0123456789\n", f);
    fclose(f);
  }
  auto without = ChildProcess::Start(
      {EDGE_BIN, "--listen=127.0.0.1:0", "--metrics_listen=", "--auth=required"});
  ASSERT_TRUE(without.ok());
  EXPECT_EQ((*without)->WaitExit(absl::Seconds(10)), 1);
  EXPECT_THAT(
      (*without)->Output(),
      HasSubstr("--auth=required needs --jwt_secret_file (the HS256 secret) or --jwks_file"));

  // The minting tool prints one token on stdout (ChildProcess keeps stderr only).
  const std::string out = absl::StrCat(dir, "/token");
  const std::string mint = absl::StrCat(EDGE_BIN, " --jwt_secret_file=", secret,
                                        " --mint_token=ann:Ann --mint_rooms=lobby > ", out);
  ASSERT_EQ(system(mint.c_str()), 0);
  std::string token;
  {
    FILE* f = fopen(out.c_str(), "r");
    ASSERT_NE(f, nullptr);
    char buffer[2048] = {};
    ASSERT_NE(fgets(buffer, sizeof(buffer), f), nullptr);
    fclose(f);
    token = std::string(absl::StripAsciiWhitespace(buffer));
  }
  ASSERT_EQ(std::count(token.begin(), token.end(), '.'), 2) << token;

  int port = 0;
  auto edge = StartLogged({EDGE_BIN, "--listen=127.0.0.1:0", "--auth=required",
                           absl::StrCat("--jwt_secret_file=", secret)},
                          &port);
  ASSERT_NE(port, 0);
  auto anonymous = WsClient::Connect(port, "/ws/chat/lobby/");
  EXPECT_EQ(WsClient::RefusedStatus(anonymous.status()), 401);
  auto kitchen = WsClient::Connect(port, absl::StrCat("/ws/chat/kitchen/?token=", token));
  EXPECT_EQ(WsClient::RefusedStatus(kitchen.status()), 403);
  auto ann = WsClient::Connect(port, absl::StrCat("/ws/chat/lobby/?token=", token));
  ASSERT_TRUE(ann.ok()) << ann.status();
  ASSERT_TRUE((*ann)->SendText(Chat("hello")));
  EXPECT_EQ((*ann)->Read().value_or(""), Chat("hello"));
  EXPECT_THAT(edge->Output(), HasSubstr("ws_auth_refused"));

  // chat.v2 names the author from the token; a name with markup is JSON text.
  auto v2 = WsClient::Connect(port, absl::StrCat("/ws/chat/lobby/?token=", token),
                              {{"Sec-WebSocket-Protocol", "chat.v2"}});
  ASSERT_TRUE(v2.ok()) << v2.status();
  // The in-process layer keeps no history (and no presence): nothing to join with.
  EXPECT_EQ((*v2)->Read().value_or(""), R"({"type":"joined","history":0,"offset":0,"epoch":""})");
  ASSERT_TRUE((*ann)->SendText(Chat("<b>hi</b>")));
  const std::string frame = (*v2)->Read().value_or("");
  EXPECT_THAT(frame, HasSubstr(R"("message":"<b>hi</b>")"));
  EXPECT_THAT(frame, HasSubstr(R"("user":{"id":"ann","name":"Ann"})"));
}

// The edge binary behind an identity provider: --auth=required with
// --jwks_file, --jwt_issuer and --jwt_audience; the provider rotates its key
// (the file gains a key) and the new key's tokens work without a restart.
TEST(EdgeAuthTest, TokensOfAnIdentityProviderFromItsJwksRotateWithoutARestart) {
  const std::string jwks = absl::StrCat(::testing::TempDir(), "/jwks-e2e.json");
  const chat::testing::TestKey first = chat::testing::TestKey::Make("ES256", "key-1");
  const chat::testing::TestKey second = chat::testing::TestKey::Make("RS256", "key-2");
  auto write = [&](const std::string& text) {
    FILE* f = fopen(jwks.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(text.c_str(), f);
    fclose(f);
  };
  write(chat::testing::Jwks({first.Jwk()}));
  int port = 0;
  auto edge = StartLogged(
      {EDGE_BIN, "--listen=127.0.0.1:0", "--auth=required", absl::StrCat("--jwks_file=", jwks),
       "--jwt_issuer=https://id.example", "--jwt_audience=chat"},
      &port);
  ASSERT_NE(port, 0);
  const std::string claims =
      absl::StrCat(R"({"sub":"f81d","preferred_username":"ann","iss":"https://id.example",)",
                   R"("aud":["chat"],"exp":)", absl::ToUnixSeconds(absl::Now()) + 600, "}");
  auto ann = WsClient::Connect(port, "/ws/chat/lobby/?token=" + first.Sign(claims),
                               {{"Sec-WebSocket-Protocol", "chat.v2"}});
  ASSERT_TRUE(ann.ok()) << ann.status();
  EXPECT_EQ((*ann)->Read().value_or(""), R"({"type":"joined","history":0,"offset":0,"epoch":""})");
  ASSERT_TRUE((*ann)->SendText(Chat("hi")));
  EXPECT_THAT((*ann)->Read().value_or(""), HasSubstr(R"("user":{"id":"f81d","name":"ann"})"));
  // Not yet published, another audience, an HS256 token with no secret: 401.
  EXPECT_EQ(WsClient::RefusedStatus(
                WsClient::Connect(port, "/ws/chat/lobby/?token=" + second.Sign(claims)).status()),
            401);
  // An HS256 token (the kind a shared secret signs) where only the provider's keys verify.
  const edge::TokenVerifier hs256("an-hs256-secret-the-edge-does-not-have-0123",
                                  chat::RealClock::Default());
  auto unsigned_here = WsClient::Connect(
      port, "/ws/chat/lobby/?token=" +
                hs256.Mint(edge::User{.id = "f81d", .name = "ann"}, absl::Hours(1)));
  EXPECT_EQ(WsClient::RefusedStatus(unsigned_here.status()), 401) << unsigned_here.status();
  EXPECT_THAT(unsigned_here.status().message(), HasSubstr("HS256 tokens are not accepted here"));
  std::string other_audience = claims;
  other_audience.replace(other_audience.find(R"(["chat"])"), 8, R"(["mail"])");
  EXPECT_EQ(
      WsClient::RefusedStatus(
          WsClient::Connect(port, "/ws/chat/lobby/?token=" + first.Sign(other_audience)).status()),
      401);
  // The provider publishes its next key; within a second or two it is taken.
  write(chat::testing::Jwks({first.Jwk(), second.Jwk()}));
  absl::Status status;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    absl::SleepFor(absl::Milliseconds(200));
    status = WsClient::Connect(port, "/ws/chat/lobby/?token=" + second.Sign(claims)).status();
  } while (!status.ok() && absl::Now() < deadline);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(edge->Output(), HasSubstr("jwks_reloaded"));
  EXPECT_THAT(edge->Output(), HasSubstr(R"(unknown key id (kid) \"key-2\")"));
}

// The dev-mode issuer (--dev_token_issuer): POST /auth/token {"name"} from the
// site's own pages gives a token that names the user; anything else is refused.
TEST(EdgeAuthTest, TheDevIssuerMintsATokenForADisplayNameFromTheSitesOwnPages) {
  const std::string secret = absl::StrCat(::testing::TempDir(), "/dev-secret");
  {
    FILE* f = fopen(secret.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("dev-secret-0123456789abcdef0123456789\n", f);
    fclose(f);
  }
  int port = 0;
  auto edge = StartLogged({EDGE_BIN, "--listen=127.0.0.1:0", "--auth=required",
                           absl::StrCat("--jwt_secret_file=", secret), "--dev_token_issuer"},
                          &port);
  ASSERT_NE(port, 0);
  EXPECT_THAT(edge->Output(), HasSubstr("issue=dev_token_issuer"));
  auto post = [&](const std::string& origin, const std::string& body) {
    RawConnection c(port);
    EXPECT_TRUE(c.Send(absl::StrCat("POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1:", port, "\r\n",
                                    origin.empty() ? "" : "Origin: " + origin + "\r\n",
                                    "Content-Type: application/json\r\nContent-Length: ",
                                    body.size(), "\r\nConnection: close\r\n\r\n", body)));
    return c.ReadAll(absl::Seconds(5));
  };
  const std::string self = absl::StrCat("http://127.0.0.1:", port);
  const std::string minted = post(self, R"({"name": "Zoë <b>"})");
  ASSERT_THAT(minted, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(minted, HasSubstr(R"("name":"Zoë <b>")"));
  const size_t at = minted.find(R"("token":")");
  ASSERT_NE(at, std::string::npos) << minted;
  const std::string token = minted.substr(at + 9, minted.find('"', at + 9) - at - 9);
  auto zoe = WsClient::Connect(port, absl::StrCat("/ws/chat/lobby/?token=", token));
  ASSERT_TRUE(zoe.ok()) << zoe.status();
  EXPECT_THAT(post("http://evil.example", R"({"name": "Eve"})"), HasSubstr("HTTP/1.1 403"));
  EXPECT_THAT(post("", R"({"name": "Eve"})"), HasSubstr("HTTP/1.1 403"));
  EXPECT_THAT(post(self, R"({"name": ""})"), HasSubstr("HTTP/1.1 400"));
  EXPECT_THAT(post(self, R"({"name": "a\u0001b"})"), HasSubstr("HTTP/1.1 400"));
  EXPECT_THAT(post(self, "not json"), HasSubstr("HTTP/1.1 400"));
  absl::StatusOr<HttpReply> get = HttpGet("127.0.0.1", port, "/auth/token");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->status, 405);

  // Without the flag the path is not there.
  int plain_port = 0;
  auto plain = StartLogged(
      {EDGE_BIN, "--listen=127.0.0.1:0", absl::StrCat("--jwt_secret_file=", secret)}, &plain_port);
  absl::StatusOr<HttpReply> none = HttpGet("127.0.0.1", plain_port, "/auth/token");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 404);
}

}  // namespace
}  // namespace chat::testing
