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
#include "edge/channels/memory_layer.h"
#include "edge/net/io_pool.h"
#include "edge/net/listener.h"
#include "gtest/gtest.h"
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
    for (const char* path : {"/ws/test/", "/ws/refuse/"}) {
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
}

}  // namespace
}  // namespace edge
