// GrpcLayer (the edge's client of groupsvc) against a real GroupServer on a
// loopback port: acks, deliveries handed to the channels' loops once per
// stream message, sends refused while the link is down, memberships replayed
// to a restarted groupsvc, and a second process refused the same edge id.
#include "edge/link/grpc_layer.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "groupsvc/server.h"
#include "gtest/gtest.h"
#include "shared/placement.h"

namespace edge {
namespace {

// Runs what is posted at once, on the caller's (gRPC's) thread, and counts
// the posts per loop.
class CountingLoops : public EventLoops {
 public:
  explicit CountingLoops(size_t n) : posts_(n, 0) {}
  size_t size() const override { return posts_.size(); }
  void Post(size_t loop, std::function<void()> fn) override {
    {
      absl::MutexLock lock(&mu_);
      ++posts_.at(loop);
    }
    fn();
  }
  size_t current() const override { return kNone; }
  size_t posts(size_t loop) const {
    absl::MutexLock lock(&mu_);
    return posts_[loop];
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<size_t> posts_ ABSL_GUARDED_BY(mu_);
};

class Sink : public ChannelSink {
 public:
  void OnEvent(const LayerEventPtr& event) override {
    absl::MutexLock lock(&mu_);
    jsons_.push_back(event->json());
  }
  // Waits until `n` events arrived; returns them.
  std::vector<std::string> Await(size_t n, absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return jsons_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return jsons_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> jsons_ ABSL_GUARDED_BY(mu_);
};

// The status a layer call reports, waited for.
class Done {
 public:
  DoneCallback callback() {
    return [this](absl::Status s) {
      absl::MutexLock lock(&mu_);
      status_ = std::move(s);
    };
  }
  absl::Status Await() {
    absl::MutexLock lock(&mu_);
    auto set = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return status_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&set), absl::Seconds(5));
    return status_.value_or(absl::DeadlineExceededError("no callback"));
  }

 private:
  absl::Mutex mu_;
  std::optional<absl::Status> status_ ABSL_GUARDED_BY(mu_);
};

bool Eventually(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

LayerEventPtr Chat(const std::string& text) {
  return LayerEvent::Make("chat.message", {{"message", text}});
}

class GrpcLayerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(0); }

  void StartServer(int port) {
    groupsvc::ServerOptions options;
    options.listen = absl::StrCat("127.0.0.1:", port);
    options.metrics_listen = "";
    options.registry.warmup = absl::ZeroDuration();
    auto server = groupsvc::GroupServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    port_ = server_->port();
  }

  std::unique_ptr<GrpcLayer> Layer(const std::string& edge_id, std::shared_ptr<EventLoops> loops) {
    auto layer =
        std::make_unique<GrpcLayer>(GrpcLayerOptions{.targets = {absl::StrCat("127.0.0.1:", port_)},
                                                     .edge_id = edge_id,
                                                     .min_backoff = absl::Milliseconds(50),
                                                     .max_backoff = absl::Milliseconds(200),
                                                     .refused_backoff = absl::Milliseconds(200),
                                                     .loops = std::move(loops)});
    layer->Start();
    return layer;
  }

  std::unique_ptr<groupsvc::GroupServer> server_;
  int port_ = 0;
};

TEST_F(GrpcLayerTest, AcksAndHandsEachStreamMessageToEachLoopOnce) {
  auto loops = std::make_shared<CountingLoops>(2);
  auto layer = Layer("edge-1", loops);
  ASSERT_TRUE(Eventually([&] { return layer->ready(); }));
  std::vector<std::shared_ptr<Sink>> sinks;
  for (size_t i = 0; i < 4; ++i) {
    sinks.push_back(std::make_shared<Sink>());
    Done added;
    layer->GroupAdd("room", layer->Register(sinks.back(), i % 2), added.callback());
    ASSERT_TRUE(added.Await().ok());
  }
  Done sent;
  layer->GroupSend("room", Chat("hi"), sent.callback());
  EXPECT_TRUE(sent.Await().ok());
  for (auto& sink : sinks) {
    std::vector<std::string> got = sink->Await(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_NE(got[0].find("\"hi\""), std::string::npos) << got[0];
  }
  // One delivery for the four local members, handed to each loop once.
  EXPECT_EQ(loops->posts(0), 1u);
  EXPECT_EQ(loops->posts(1), 1u);

  Done bad;
  layer->GroupAdd("not a group!", layer->Register(sinks[0], 0), bad.callback());
  EXPECT_EQ(bad.Await().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GrpcLayerTest, SendsFailWhileDownAndMembershipsReplayAfterARestart) {
  auto layer = Layer("edge-1", std::make_shared<InlineLoops>());
  ASSERT_TRUE(Eventually([&] { return layer->ready(); }));
  auto sink = std::make_shared<Sink>();
  Done added;
  layer->GroupAdd("room", layer->Register(sink, 0), added.callback());
  ASSERT_TRUE(added.Await().ok());

  const int port = port_;
  server_->Shutdown(absl::Milliseconds(200));
  server_.reset();
  ASSERT_TRUE(Eventually([&] { return !layer->ready(); }));
  Done refused;
  layer->GroupSend("room", Chat("lost"), refused.callback());
  EXPECT_EQ(refused.Await().code(), absl::StatusCode::kUnavailable);

  // A groupsvc with no state at all on the same port: the layer reconnects by
  // itself and replays the membership, so the room works without a GroupAdd.
  StartServer(port);
  ASSERT_TRUE(Eventually([&] { return layer->ready(); }));
  EXPECT_GE(layer->connects(), 2u);
  Done sent;
  layer->GroupSend("room", Chat("back"), sent.callback());
  EXPECT_TRUE(sent.Await().ok());
  std::vector<std::string> got = sink->Await(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].find("\"back\""), std::string::npos) << got[0];
}

TEST_F(GrpcLayerTest, AnotherProcessWithTheSameEdgeIdIsRefused) {
  auto first = Layer("edge-1", std::make_shared<InlineLoops>());
  ASSERT_TRUE(Eventually([&] { return first->ready(); }));
  auto second = Layer("edge-1", std::make_shared<InlineLoops>());
  // groupsvc refuses it (ALREADY_EXISTS) and keeps the first: it never turns
  // ready, and its sends are refused at once.
  EXPECT_FALSE(Eventually([&] { return second->ready(); }, absl::Seconds(1)));
  EXPECT_TRUE(first->ready());
  Done refused;
  second->GroupSend("room", Chat("x"), refused.callback());
  EXPECT_EQ(refused.Await().code(), absl::StatusCode::kUnavailable);
}

// Two shards, in process: each command goes to its group's owner, and a shard
// down fails only its own groups' sends.
class GrpcLayerShardsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      // A port free now; both shards need the list before either starts.
      groupsvc::ServerOptions probe;
      probe.listen = "127.0.0.1:0";
      probe.metrics_listen = "";
      auto s = groupsvc::GroupServer::Start(probe);
      ASSERT_TRUE(s.ok());
      targets_.push_back(absl::StrCat("127.0.0.1:", (*s)->port()));
    }
    for (uint32_t i = 0; i < 2; ++i) StartShard(i);
  }

  void StartShard(uint32_t i) {
    groupsvc::ServerOptions options;
    options.listen = targets_[i];
    options.metrics_listen = "";
    options.registry.warmup = absl::ZeroDuration();
    auto map = groupsvc::ShardMap::Make(targets_, absl::StrCat(i));
    ASSERT_TRUE(map.ok());
    options.shards = *map;
    auto server = groupsvc::GroupServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    if (shards_.size() <= i) shards_.resize(i + 1);
    shards_[i] = *std::move(server);
  }

  // A group placed on shard `shard` of two.
  static std::string GroupOn(uint32_t shard) {
    for (int i = 0;; ++i) {
      std::string group = absl::StrCat("room", i);
      if (chat::GroupShard(group, 2) == shard) return group;
    }
  }

  std::vector<std::string> targets_;
  std::vector<std::unique_ptr<groupsvc::GroupServer>> shards_;
};

TEST_F(GrpcLayerShardsTest, EachGroupLivesOnItsOwnerAndAShardDownFailsOnlyItsGroups) {
  GrpcLayer layer(GrpcLayerOptions{.targets = targets_,
                                   .edge_id = "edge-1",
                                   .min_backoff = absl::Milliseconds(50),
                                   .max_backoff = absl::Milliseconds(200)});
  layer.Start();
  ASSERT_TRUE(Eventually([&] {
    for (const LinkState& link : layer.links()) {
      if (!link.up) return false;
    }
    return true;
  }));
  auto sink = std::make_shared<Sink>();
  const std::string channel = layer.Register(sink, 0);
  const std::string on0 = GroupOn(0), on1 = GroupOn(1);
  for (const std::string& group : {on0, on1}) {
    Done added;
    layer.GroupAdd(group, channel, added.callback());
    ASSERT_TRUE(added.Await().ok());
  }
  EXPECT_TRUE(shards_[0]->registry().GetGroup(on0).ok());
  EXPECT_FALSE(shards_[0]->registry().GetGroup(on1).ok());
  EXPECT_TRUE(shards_[1]->registry().GetGroup(on1).ok());
  EXPECT_FALSE(shards_[1]->registry().GetGroup(on0).ok());

  shards_[1]->Shutdown(absl::Milliseconds(200));
  shards_[1].reset();
  ASSERT_TRUE(Eventually([&] { return !layer.links()[1].up; }));
  EXPECT_TRUE(layer.ready());  // One shard of two is still attached.
  Done refused, sent;
  layer.GroupSend(on1, Chat("lost"), refused.callback());
  EXPECT_EQ(refused.Await().code(), absl::StatusCode::kUnavailable);
  layer.GroupSend(on0, Chat("kept"), sent.callback());
  EXPECT_TRUE(sent.Await().ok());
  ASSERT_EQ(sink->Await(1).size(), 1u);

  // Back on the same port with no state: the layer replays its member of on1 there only.
  StartShard(1);
  ASSERT_TRUE(Eventually([&] { return layer.links()[1].up; }));
  EXPECT_TRUE(shards_[1]->registry().GetGroup(on1).ok());
  EXPECT_FALSE(shards_[1]->registry().GetGroup(on0).ok());
  Done back;
  layer.GroupSend(on1, Chat("back"), back.callback());
  EXPECT_TRUE(back.Await().ok());
  EXPECT_EQ(sink->Await(2).size(), 2u);
}

}  // namespace
}  // namespace edge
