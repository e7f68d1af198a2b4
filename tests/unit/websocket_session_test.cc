// WebSocketSession with a consumer of the test's own, behind a real listener
// on a loopback port and a real IoPool (no groupsvc, no EdgeServer): the
// consumer's lifecycle, where its code runs, and the close code of each
// fault.
#include "edge/net/websocket_session.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "edge/auth/token.h"
#include "edge/channels/memory_layer.h"
#include "edge/net/io_pool.h"
#include "edge/net/listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/http_get.h"
#include "tests/support/ws_client.h"

namespace edge {
namespace {

using chat::testing::WsClient;

// What the consumers saw, from any thread.
struct Journal {
  absl::Mutex mu;
  std::vector<std::string> lines ABSL_GUARDED_BY(mu);
  // The threads consumer code ran on.
  std::vector<std::thread::id> threads ABSL_GUARDED_BY(mu);
  std::string channel ABSL_GUARDED_BY(mu);

  void Add(std::string line) {
    absl::MutexLock lock(&mu);
    lines.push_back(std::move(line));
    threads.push_back(std::this_thread::get_id());
  }
  bool AwaitLine(const std::string& line, absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu);
    auto seen = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return std::find(lines.begin(), lines.end(), line) != lines.end();
    };
    return mu.AwaitWithTimeout(absl::Condition(&seen), timeout);
  }
};

// Accepts unless the path says no; echoes text; "flood" sends 3,000 frames
// of 1 KB; joins "room" and forwards its events to the client.
class TestConsumer : public Consumer {
 public:
  explicit TestConsumer(std::shared_ptr<Journal> journal) : journal_(std::move(journal)) {
    On("test.event", [this](const LayerEvent& e) {
      journal_->Add("event");
      Send(std::string(e.json()));
    });
  }
  void Connect() override {
    journal_->Add("connect");
    if (scope().authenticated) journal_->Add("user " + scope().user + " " + scope().user_id);
    if (scope().path == "/ws/refuse/") {
      Close();
      return;
    }
    {
      absl::MutexLock lock(&journal_->mu);
      journal_->channel = channel_name();
    }
    GroupAdd("room", [this](absl::Status s) {
      journal_->Add(s.ok() ? "joined" : "join failed");
      Accept();
    });
  }
  void Receive(const std::string& text) override {
    journal_->Add("receive " + text);
    if (text == "flood") {
      for (int i = 0; i < 3000; ++i) Send(std::string(1024, 'x'));
      return;
    }
    Send(text);
  }
  void Disconnect(uint16_t code) override { journal_->Add("disconnect " + std::to_string(code)); }

 private:
  std::shared_ptr<Journal> journal_;
};

class WebSocketSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_shared<IoPool>(2);
    context_ = std::make_shared<EdgeContext>();
    context_->options.max_frame_bytes = 4096;
    context_->options.max_queue_frames = 64;
    context_->options.socket_send_buffer = 16 << 10;
    context_->layer = std::make_shared<MemoryLayer>("test!", pool_);
    context_->router = std::make_shared<Router>();
    auto journal = journal_;
    for (const char* path : {"/ws/test/", "/ws/refuse/", "/ws/chat/{room_name}/"}) {
      context_->router->Add(path, [journal] { return std::make_unique<TestConsumer>(journal); });
    }
    context_->metrics = std::make_shared<EdgeMetrics>([] { return true; }, [] { return 0; });
    context_->admission = std::make_shared<Admission>(Admission::Limits{});
    auto listener = Listener::Bind(
        pool_, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
        context_, Listener::Serves::kEverything);
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = *std::move(listener);
    listener_->Run();
    pool_->Start();
  }

  void TearDown() override {
    listener_->Stop();
    context_->sessions.CloseAll(kCloseGoingAway);
    absl::SleepFor(absl::Milliseconds(50));
    pool_->Stop();
    pool_->Join();
    listener_.reset();
    pool_->DestroyHandlers();
  }

  std::shared_ptr<Journal> journal_ = std::make_shared<Journal>();
  std::shared_ptr<IoPool> pool_;
  std::shared_ptr<EdgeContext> context_;
  std::shared_ptr<Listener> listener_;
};

TEST_F(WebSocketSessionTest, RunsTheConsumersLifecycleInOrderOnOneThread) {
  auto client = WsClient::Connect(listener_->port(), "/ws/test/");
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->SendText("hello"));
  EXPECT_EQ((*client)->Read().value_or(""), "hello");
  // An event from another thread (here the test's) runs on the session's loop.
  std::string channel;
  {
    absl::MutexLock lock(&journal_->mu);
    channel = journal_->channel;
  }
  context_->layer->Send(channel, LayerEvent::FromWire("test.event", R"({"type":"test.event"})"),
                        nullptr);
  EXPECT_EQ((*client)->Read().value_or(""), R"({"type":"test.event"})");
  (*client)->Close();
  ASSERT_TRUE(journal_->AwaitLine("disconnect 1000"));
  absl::MutexLock lock(&journal_->mu);
  EXPECT_EQ(journal_->lines, (std::vector<std::string>{"connect", "joined", "receive hello",
                                                       "event", "disconnect 1000"}));
  for (const auto& id : journal_->threads) {
    EXPECT_EQ(id, journal_->threads.front()) << "consumer code ran on two threads";
  }
  EXPECT_NE(journal_->threads.front(), std::this_thread::get_id());
}

TEST_F(WebSocketSessionTest, AConsumerThatClosesBeforeAcceptingRefusesWith403) {
  auto client = WsClient::Connect(listener_->port(), "/ws/refuse/");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(WsClient::RefusedStatus(client.status()), 403) << client.status();
}

TEST_F(WebSocketSessionTest, EachFaultClosesWithItsCode) {
  struct Case {
    const char* what;
    std::function<bool(WsClient&)> send;
    int code;
  };
  const std::vector<Case> cases = {
      {"oversized", [](WsClient& c) { return c.SendText(std::string(5000, 'a')); }, kCloseTooBig},
      {"binary", [](WsClient& c) { return c.SendBinary("\x01\x02"); }, kCloseUnsupportedData},
  };
  for (const Case& c : cases) {
    auto client = WsClient::Connect(listener_->port(), "/ws/test/");
    ASSERT_TRUE(client.ok()) << client.status();
    ASSERT_TRUE(c.send(**client)) << c.what;
    EXPECT_EQ((*client)->WaitClosed().value_or(0), c.code) << c.what;
    // Every close the edge starts says why, for people.
    EXPECT_EQ((*client)->close_reason(), CloseExplained(c.code)) << c.what;
    EXPECT_FALSE((*client)->close_reason().empty()) << c.what;
  }
}

TEST_F(WebSocketSessionTest, AReaderThatStoppedReadingIsClosedWith1013) {
  auto client = WsClient::Connect(listener_->port(), "/ws/test/");
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->SendText("flood"));
  // 3 MB for a reader that reads nothing meanwhile: the queue (64 frames)
  // overflows, the session drops it and closes; the reader still reads 1013.
  ASSERT_TRUE(journal_->AwaitLine("disconnect 1013"));
  EXPECT_EQ((*client)->WaitClosed(absl::Seconds(10)).value_or(0), kCloseTryAgainLater);
}

TEST_F(WebSocketSessionTest, ShutdownClosesWith1001) {
  auto client = WsClient::Connect(listener_->port(), "/ws/test/");
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(journal_->AwaitLine("joined"));
  context_->sessions.CloseAll(kCloseGoingAway);
  EXPECT_EQ((*client)->WaitClosed().value_or(0), kCloseGoingAway);
  EXPECT_EQ((*client)->close_reason(), "the server is restarting: reload the page to reconnect");
}

// Identity (edge/auth/token.h), checked before the upgrade.
class AuthenticatedSessionTest : public WebSocketSessionTest {
 protected:
  void SetUp() override {
    WebSocketSessionTest::SetUp();
    context_->verifier = std::make_shared<TokenVerifier>(kSecret, &clock_);
  }
  std::string Token(User user, absl::Duration ttl = absl::Minutes(5)) const {
    return context_->verifier->Mint(user, ttl);
  }
  static constexpr char kSecret[] = "session-test-secret-0123456789abcdef";
  chat::RealClock clock_;
};

TEST_F(AuthenticatedSessionTest, ATokenNamesTheUserInTheScopeAndBadOnesAre401Or403) {
  const int port = listener_->port();
  auto alice =
      WsClient::Connect(port, "/ws/test/?token=" + Token(User{.id = "alice", .name = "Alice"}));
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_TRUE(journal_->AwaitLine("user Alice alice"));
  // Anonymous users chat under --auth=optional (the default).
  auto anonymous = WsClient::Connect(port, "/ws/test/");
  EXPECT_TRUE(anonymous.ok()) << anonymous.status();
  // A token that does not verify is refused before the upgrade, with its reason.
  auto forged = WsClient::Connect(port, "/ws/test/?token=" + Token(User{.id = "eve"}) + "x");
  EXPECT_EQ(WsClient::RefusedStatus(forged.status()), 401) << forged.status();
  TokenVerifier other("another-secret-0123456789abcdef0123456", &clock_);
  auto foreign =
      WsClient::Connect(port, "/ws/test/?token=" + other.Mint(User{.id = "eve"}, absl::Minutes(5)));
  EXPECT_EQ(WsClient::RefusedStatus(foreign.status()), 401);
  auto expired =
      WsClient::Connect(port, "/ws/test/?token=" + Token(User{.id = "bob"}, -absl::Minutes(1)));
  EXPECT_EQ(WsClient::RefusedStatus(expired.status()), 401);
  // A room the token does not list: 403.
  const std::string lobby_only = Token(User{.id = "dan", .rooms = {"lob*"}});
  EXPECT_TRUE(WsClient::Connect(port, "/ws/chat/lobby/?token=" + lobby_only).ok());
  auto kitchen = WsClient::Connect(port, "/ws/chat/kitchen/?token=" + lobby_only);
  EXPECT_EQ(WsClient::RefusedStatus(kitchen.status()), 403);
  std::string text = context_->metrics->Render();
  EXPECT_THAT(text, ::testing::HasSubstr(R"(edge_auth_total{reason="room",result="refused"} 1)"));
  EXPECT_THAT(text, ::testing::HasSubstr(R"(edge_auth_total{result="anonymous"} 1)"));
}

TEST_F(AuthenticatedSessionTest, RequiredRefusesAnonymousUsersAndAnExpiredTokenCloses4001) {
  context_->options.auth = AuthMode::kRequired;
  const int port = listener_->port();
  auto anonymous = WsClient::Connect(port, "/ws/test/");
  EXPECT_EQ(WsClient::RefusedStatus(anonymous.status()), 401);
  auto user =
      WsClient::Connect(port, "/ws/test/?token=" + Token(User{.id = "ann"}, absl::Seconds(30)));
  ASSERT_TRUE(user.ok()) << user.status();
  ASSERT_TRUE((*user)->SendText("hi"));
  EXPECT_EQ((*user)->Read().value_or(""), "hi");
  // Not yet expired: nothing happens; past its expiry: closed with 4001.
  context_->sessions.CloseExpired(absl::Now());
  ASSERT_TRUE((*user)->SendText("still"));
  EXPECT_EQ((*user)->Read().value_or(""), "still");
  context_->sessions.CloseExpired(absl::Now() + absl::Minutes(1));
  EXPECT_EQ((*user)->Read().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*user)->close_code(), kCloseTokenExpired);
  EXPECT_EQ((*user)->close_reason(), "your sign-in expired: sign in again");
}

TEST_F(AuthenticatedSessionTest, AUserOverTheCapIsRefusedWith429AndAClosedPageFreesItsPlace) {
  context_->options.max_connections_per_user = 2;
  const int port = listener_->port();
  const std::string ann = Token(User{.id = "ann", .name = "Ann"});
  auto first = WsClient::Connect(port, "/ws/chat/lobby/?token=" + ann);
  auto second = WsClient::Connect(port, "/ws/chat/garden/?token=" + ann);
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = WsClient::Connect(port, "/ws/chat/lobby/?token=" + ann);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(WsClient::RefusedStatus(third.status()), 429) << third.status();
  EXPECT_THAT(third.status().message(),
              ::testing::HasSubstr("user \"ann\" already has 2 connections"));
  EXPECT_THAT(context_->metrics->Render(),
              ::testing::HasSubstr(R"(edge_connections_refused_total{reason="user_cap"} 1)"));
  // A browser cannot read the 429; its page names the attempt and asks for
  // it. Another attempt's id, or none, reads nothing.
  const std::string attempt = "0123456789abcdef0123";
  auto named = WsClient::Connect(port, "/ws/chat/lobby/?token=" + ann + "&attempt=" + attempt);
  EXPECT_EQ(WsClient::RefusedStatus(named.status()), 429) << named.status();
  auto why = chat::testing::HttpGet("127.0.0.1", port, "/ws/refused?attempt=" + attempt);
  ASSERT_TRUE(why.ok()) << why.status();
  EXPECT_EQ(why->status, 200);
  EXPECT_THAT(why->body, ::testing::HasSubstr(R"("status":429)"));
  EXPECT_THAT(why->body, ::testing::HasSubstr(R"(user \"ann\" already has 2 connections)"));
  EXPECT_EQ(chat::testing::HttpGet("127.0.0.1", port, "/ws/refused")->status, 204);
  EXPECT_EQ(
      chat::testing::HttpGet("127.0.0.1", port, "/ws/refused?attempt=another-0123456789")->status,
      204);
  // Anonymous users and other users are not counted against Ann.
  EXPECT_TRUE(WsClient::Connect(port, "/ws/chat/lobby/").ok());
  EXPECT_TRUE(WsClient::Connect(port, "/ws/chat/lobby/?token=" + Token(User{.id = "bob"})).ok());
  (*first)->Close();
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<WsClient>> again;
  do {
    again = WsClient::Connect(port, "/ws/chat/lobby/?token=" + ann);
  } while (!again.ok() && absl::Now() < deadline);
  EXPECT_TRUE(again.ok()) << again.status();
}

// A layer whose link cannot take the count: full, not the user's doing.
class FullLayer : public MemoryLayer {
 public:
  using MemoryLayer::MemoryLayer;
  void ConnectUser(const std::string& channel, UserConnection user, uint32_t cap,
                   DoneCallback done) override {
    if (done) done(absl::ResourceExhaustedError("too many commands waiting for groupsvc"));
  }
};

TEST_F(AuthenticatedSessionTest, AUserTheLayerHasNoRoomToCountIsRefusedWith503NotTheCapsStatus) {
  context_->layer = std::make_shared<FullLayer>("test!", pool_);
  context_->options.max_connections_per_user = 2;
  auto ann =
      WsClient::Connect(listener_->port(), "/ws/chat/lobby/?token=" + Token(User{.id = "ann"}));
  ASSERT_FALSE(ann.ok());
  EXPECT_EQ(WsClient::RefusedStatus(ann.status()), 503) << ann.status();
  EXPECT_THAT(ann.status().message(), ::testing::HasSubstr("too many commands waiting"));
  const std::string text = context_->metrics->Render();
  EXPECT_THAT(text, ::testing::HasSubstr(R"(edge_connections_refused_total{reason="busy"} 1)"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr(R"(reason="user_cap")")));
}

}  // namespace
}  // namespace edge
