// Contract tests: a real groupsvc (GroupServer) on a loopback port, real gRPC
// clients, real streams.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "groupsvc/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/test_edge.h"

namespace groupsvc {
namespace {

using chat::testing::TestEdge;

std::string ChatJson(const std::string& message) {
  return absl::StrCat(R"({"type":"chat.message","message":")", message, R"("})");
}

google::protobuf::Struct JsonStruct(const std::string& json) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

// No warm-up, so that acks say `unsettled` only for what a test does.
ServerOptions Settled() {
  ServerOptions options;
  options.registry.warmup = absl::ZeroDuration();
  return options;
}

// A GroupSendRequest whose event nests `depth` levels of objects.
std::string NestedGroupSend(int depth) {
  v1::GroupSendRequest request;
  request.set_group("room");
  google::protobuf::Struct* level = request.mutable_event();
  (*level->mutable_fields())["type"].set_string_value("chat.message");
  for (int i = 1; i < depth; ++i) level = (*level->mutable_fields())["x"].mutable_struct_value();
  return request.SerializeAsString();
}

// Every test runs against groupsvc on one completion loop (the default) and
// on two (--rpc_threads=2: streams and calls spread over two polling threads,
// deliveries crossing from one loop's thread to another's streams).
class GroupsvcContractTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { StartServer(Settled()); }

  void StartServer(ServerOptions options) {
    options.listen = "127.0.0.1:0";
    options.rpc_threads = GetParam();
    options.metrics_listen = "";
    auto server = GroupServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::ChannelLayer::NewStub(channel_);
  }

  std::unique_ptr<TestEdge> AttachedEdge(const std::string& id, const std::string& prefix) {
    auto edge = std::make_unique<TestEdge>(channel_, id, prefix);
    grpc::Status s = edge->Hello();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return edge;
  }

  void AddOk(TestEdge& edge, uint64_t id, const std::string& group, const std::string& channel) {
    ASSERT_TRUE(edge.GroupAdd(id, group, channel));
    std::optional<v1::Ack> ack = edge.NextAck();
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(ack->request_id(), id);
    EXPECT_EQ(ack->code(), 0) << ack->message();
  }

  grpc::Status GroupSend(const std::string& group, const std::string& json,
                         v1::GroupSendResponse* response = nullptr) {
    grpc::ClientContext context;
    v1::GroupSendRequest request;
    request.set_group(group);
    *request.mutable_event() = JsonStruct(json);
    v1::GroupSendResponse ignored;
    return stub_->GroupSend(&context, request, response ? response : &ignored);
  }

  grpc::Status GetGroup(const std::string& name, v1::Group* group) {
    grpc::ClientContext context;
    v1::GetGroupRequest request;
    request.set_name(name);
    return stub_->GetGroup(&context, request, group);
  }

  // Polls GetGroup until `name` has `size` members (0: gone), for at most a second.
  bool WaitGroupSize(const std::string& name, int size) {
    const absl::Time deadline = absl::Now() + absl::Seconds(1);
    do {
      v1::Group group;
      grpc::Status s = GetGroup(name, &group);
      if (size == 0 ? s.error_code() == grpc::StatusCode::NOT_FOUND
                    : group.members_size() == size) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    } while (absl::Now() < deadline);
    return false;
  }

  // A unary call of `method` with `bytes` as its request, whatever they are.
  grpc::Status RawCall(const std::string& method, const std::string& bytes,
                       grpc::ByteBuffer* response = nullptr) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer ignored;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, response ? response : &ignored,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  // A streaming call of `method` that writes `messages` (bytes, whatever they
  // are), closes its side, and reads until the server ends it: its status,
  // and in `read` how many messages came back.
  grpc::Status RawStream(const std::string& method, const std::vector<std::string>& messages,
                         int* read = nullptr) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::CompletionQueue cq;
    auto call = stub.PrepareCall(&context, method, &cq);
    intptr_t next_tag = 1;
    // Starts one operation with `op(tag)` and waits for it: its ok.
    auto run = [&](auto op) {
      const intptr_t tag = next_tag++;
      op(reinterpret_cast<void*>(tag));
      void* got = nullptr;
      bool ok = false;
      EXPECT_TRUE(cq.Next(&got, &ok));
      EXPECT_EQ(reinterpret_cast<intptr_t>(got), tag);
      return ok;
    };
    EXPECT_TRUE(run([&](void* tag) { call->StartCall(tag); }));
    for (const std::string& bytes : messages) {
      grpc::Slice slice(bytes);
      grpc::ByteBuffer buffer(&slice, 1);
      if (!run([&](void* tag) { call->Write(buffer, tag); })) break;
    }
    run([&](void* tag) { call->WritesDone(tag); });
    int n = 0;
    grpc::ByteBuffer incoming;
    while (run([&](void* tag) { call->Read(&incoming, tag); })) ++n;
    if (read != nullptr) *read = n;
    grpc::Status status;
    run([&](void* tag) { call->Finish(&status, tag); });
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
    return status;
  }

  // The ack of one group_send on `edge`'s stream.
  v1::Ack StreamGroupSend(TestEdge& edge, uint64_t id, const std::string& group) {
    EXPECT_TRUE(edge.GroupSend(id, group, "chat.message", ChatJson("hi")));
    std::optional<v1::Ack> ack = edge.NextAck();
    EXPECT_TRUE(ack.has_value());
    return ack.value_or(v1::Ack());
  }

  v1::StatsResponse Stats() {
    grpc::ClientContext context;
    v1::StatsResponse stats;
    EXPECT_TRUE(stub_->Stats(&context, v1::StatsRequest(), &stats).ok());
    return stats;
  }

  std::unique_ptr<GroupServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ChannelLayer::Stub> stub_;
};

TEST_P(GroupsvcContractTest, GroupSendReachesEachEdgeOnceWithItsMembers) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  auto e2 = AttachedEdge("edge-2", "e2!");
  uint64_t id = 1;
  for (const char* c : {"e1!a", "e1!b", "e1!c"}) AddOk(*e1, id++, "chat_lobby", c);
  for (const char* c : {"e2!x", "e2!y"}) AddOk(*e2, id++, "chat_lobby", c);

  v1::GroupSendResponse response;
  ASSERT_TRUE(GroupSend("chat_lobby", ChatJson("hello"), &response).ok());
  EXPECT_EQ(response.delivered(), 5u);

  std::optional<v1::Delivery> d1 = e1->NextDelivery();
  std::optional<v1::Delivery> d2 = e2->NextDelivery();
  ASSERT_TRUE(d1.has_value() && d2.has_value());
  EXPECT_EQ(d1->channels_size(), 3);
  EXPECT_EQ(d2->channels_size(), 2);
  EXPECT_EQ(d1->event().type(), "chat.message");
  EXPECT_NE(d1->event().json().find("hello"), std::string::npos);
  EXPECT_EQ(d1->group(), "chat_lobby");
  // Exactly one stream message per edge, never one per member.
  EXPECT_FALSE(e1->NextDelivery(absl::Milliseconds(200)).has_value());
  EXPECT_EQ(e1->deliveries_received(), 1u);
  EXPECT_EQ(e2->deliveries_received(), 1u);
  EXPECT_EQ(Stats().stream_deliveries(), 2u);
}

TEST_P(GroupsvcContractTest, StreamGroupSendIsAckedAndDeliveredInSenderOrder) {
  auto sender = AttachedEdge("edge-1", "e1!");
  auto receiver = AttachedEdge("edge-2", "e2!");
  AddOk(*receiver, 1, "room", "e2!r");
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(sender->GroupSend(100 + i, "room", "chat.message", ChatJson(absl::StrCat(i))));
  }
  for (int i = 0; i < kMessages; ++i) {
    std::optional<v1::Ack> ack = sender->NextAck();
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(ack->request_id(), 100u + i);
    EXPECT_EQ(ack->code(), 0);
    EXPECT_EQ(ack->delivered(), 1u);
  }
  for (int i = 0; i < kMessages; ++i) {
    std::optional<v1::Delivery> d = receiver->NextDelivery();
    ASSERT_TRUE(d.has_value()) << i;
    EXPECT_EQ(d->event().json(), ChatJson(absl::StrCat(i)));
  }
}

TEST_P(GroupsvcContractTest, OneIncomingBatchLeavesInOneMessagePerStream) {
  auto sender = AttachedEdge("edge-1", "e1!");
  auto receiver = AttachedEdge("edge-2", "e2!");
  AddOk(*receiver, 1, "room", "e2!r");
  const size_t sender_before = sender->messages_received();
  const size_t receiver_before = receiver->messages_received();
  // Ten group_sends in one stream message.
  v1::EdgeMessage batch;
  for (int i = 0; i < 10; ++i) {
    v1::Command* c = batch.add_commands();
    c->set_request_id(100 + i);
    c->mutable_group_send()->set_group("room");
    c->mutable_group_send()->mutable_event()->set_type("chat.message");
    c->mutable_group_send()->mutable_event()->set_json(ChatJson(absl::StrCat(i)));
  }
  ASSERT_TRUE(sender->Write(batch));
  for (int i = 0; i < 10; ++i) {
    std::optional<v1::Delivery> d = receiver->NextDelivery();
    ASSERT_TRUE(d.has_value()) << i;
    EXPECT_EQ(d->event().json(), ChatJson(absl::StrCat(i)));
    ASSERT_TRUE(sender->NextAck().has_value()) << i;
  }
  // Not the first one alone and the rest behind it: one message each way.
  EXPECT_EQ(receiver->messages_received() - receiver_before, 1u);
  EXPECT_EQ(sender->messages_received() - sender_before, 1u);
}

// GetHistory: every group_send (unary or on a stream) numbered by the
// group's offset; a caller that saw offset N gets what came after it.
// --stream_coalesce: above the rate, a stream's next write waits for the
// delay after the previous one and takes what came meanwhile; below it, every
// write goes at once.
TEST_P(GroupsvcContractTest, CoalescingTakesWhatComesWithinTheDelayAboveTheRate) {
  for (const bool engaged : {false, true}) {
    ServerOptions options = Settled();
    // Long enough that a loaded machine (ASan, parallel tests) still sends
    // the four within it.
    options.attach.coalesce_delay = absl::Seconds(1);
    options.attach.coalesce_above_rate = engaged ? 0 : 1e9;
    StartServer(options);
    auto receiver = AttachedEdge("edge-2", "e2!");
    AddOk(*receiver, 1, "room", "e2!r");
    absl::SleepFor(absl::Milliseconds(1100));  // The ack's write is past the delay.
    const size_t before = receiver->messages_received();
    auto expect_delivery = [&](int i) {
      std::optional<v1::Delivery> d = receiver->NextDelivery();
      ASSERT_TRUE(d.has_value()) << i;
      // In order, none lost.
      EXPECT_NE(d->event().json().find(absl::StrCat(R"("message":")", i, R"(")")),
                std::string::npos)
          << d->event().json();
    };
    // Five group_sends, each in a stream message of its own: engaged, 10 ms
    // apart; not engaged, each after the previous one arrived.
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(GroupSend("room", ChatJson(absl::StrCat(i))).ok());
      if (engaged) {
        absl::SleepFor(absl::Milliseconds(10));
      } else {
        expect_delivery(i);
      }
    }
    for (int i = 0; engaged && i < 5; ++i) expect_delivery(i);
    // Engaged: the first at once, the other four held together behind it.
    EXPECT_EQ(receiver->messages_received() - before, engaged ? 2u : 5u) << engaged;
  }
}

TEST_P(GroupsvcContractTest, GetHistoryPagesThroughTheGroupsOffsets) {
  auto edge = AttachedEdge("edge-h", "edge-h!");
  v1::GroupSendResponse sent;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(GroupSend("chat_hist", ChatJson(absl::StrCat("m", i)), &sent).ok());
    EXPECT_EQ(sent.offset(), uint64_t(i));
  }
  auto history = [&](uint64_t since, const std::string& epoch, v1::GetHistoryResponse* out) {
    grpc::ClientContext context;
    v1::GetHistoryRequest request;
    request.set_group("chat_hist");
    request.set_since_offset(since);
    request.set_epoch(epoch);
    return stub_->GetHistory(&context, request, out);
  };
  v1::GetHistoryResponse all;
  ASSERT_TRUE(history(0, "", &all).ok());
  ASSERT_EQ(all.events_size(), 3);
  EXPECT_FALSE(all.recovered());  // No epoch given: the latest, not "what you missed".
  EXPECT_EQ(all.latest_offset(), 3u);
  EXPECT_EQ(all.events(2).event().fields().at("message").string_value(), "m3");
  EXPECT_GT(all.events(0).time().seconds(), 0);
  v1::GetHistoryResponse missed;
  ASSERT_TRUE(history(1, all.epoch(), &missed).ok());
  EXPECT_TRUE(missed.recovered());
  ASSERT_EQ(missed.events_size(), 2);
  EXPECT_EQ(missed.events(0).offset(), 2u);
  v1::GetHistoryResponse other_epoch;
  ASSERT_TRUE(history(1, "not-this-one", &other_epoch).ok());
  EXPECT_FALSE(other_epoch.recovered());
  grpc::ClientContext context;
  v1::GetHistoryRequest bad;
  bad.set_group("bad group");
  v1::GetHistoryResponse ignored;
  EXPECT_EQ(stub_->GetHistory(&context, bad, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Presence: group_adds that carry a user list it (GetPresence), once per
// user; channels that watch get presence.join and presence.leave events.
TEST_P(GroupsvcContractTest, GroupAddsWithAUserMakeThePresenceThatWatchersHear) {
  auto e1 = AttachedEdge("edge-p1", "p1!");
  auto e2 = AttachedEdge("edge-p2", "p2!");
  auto add = [](TestEdge& edge, uint64_t id, const std::string& channel, const std::string& user,
                bool watch) {
    v1::Command c;
    c.set_request_id(id);
    c.mutable_group_add()->set_group("chat_here");
    c.mutable_group_add()->set_channel(channel);
    if (!user.empty()) {
      c.mutable_group_add()->mutable_user()->set_id(user);
      c.mutable_group_add()->mutable_user()->set_name(user + " N.");
    }
    c.mutable_group_add()->set_watch_presence(watch);
    ASSERT_TRUE(edge.Command(c));
    std::optional<v1::Ack> ack = edge.NextAck();
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(ack->code(), 0) << ack->message();
  };
  add(*e1, 1, "p1!ann", "ann", true);
  add(*e2, 2, "p2!bo", "bo", false);  // Bo's edge does not watch: it gets nothing.
  std::optional<v1::Delivery> joined = e1->NextDelivery();
  ASSERT_TRUE(joined.has_value());
  EXPECT_EQ(joined->event().type(), "presence.join");
  EXPECT_NE(joined->event().json().find(R"("id":"bo")"), std::string::npos);
  EXPECT_NE(joined->event().json().find(R"("name":"bo N.")"), std::string::npos);
  ASSERT_EQ(joined->channels_size(), 1);
  EXPECT_EQ(joined->channels(0), "p1!ann");
  add(*e2, 3, "p2!bo2", "bo", false);  // Bo's second tab.
  add(*e2, 4, "p2!anon", "", false);
  // The same, asked on the stream (as an edge does when a page joins) and by grpcurl.
  v1::Command ask;
  ask.set_request_id(5);
  ask.mutable_presence()->set_group("chat_here");
  ASSERT_TRUE(e1->Command(ask));
  std::optional<v1::Ack> answer = e1->NextAck();
  ASSERT_TRUE(answer.has_value());
  ASSERT_EQ(answer->presence().members_size(), 2);
  EXPECT_EQ(answer->presence().members(1).id(), "bo");
  EXPECT_EQ(answer->presence().members(1).connections(), 2u);
  EXPECT_EQ(answer->presence().anonymous_connections(), 1u);
  grpc::ClientContext context;
  v1::GetPresenceRequest request;
  request.set_group("chat_here");
  v1::GetPresenceResponse listed;
  ASSERT_TRUE(stub_->GetPresence(&context, request, &listed).ok());
  EXPECT_EQ(listed.members(0).name(), "ann N.");
  EXPECT_GT(listed.members(0).since().seconds(), 0);
  // Bo's edge is gone (its stream cut, as by a crash): a leave well before
  // the debounce (3 s), after the lost edge's grace (0.5 s).
  e2.reset();
  std::optional<v1::Delivery> left = e1->NextDelivery(absl::Milliseconds(1500));
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(left->event().type(), "presence.leave");
  EXPECT_NE(left->event().json().find(R"("id":"bo")"), std::string::npos);
  // A name longer than 256 bytes is refused.
  v1::Command long_name;
  long_name.set_request_id(6);
  long_name.mutable_group_add()->set_group("chat_here");
  long_name.mutable_group_add()->set_channel("p1!x");
  long_name.mutable_group_add()->mutable_user()->set_id("x");
  long_name.mutable_group_add()->mutable_user()->set_name(std::string(300, 'n'));
  ASSERT_TRUE(e1->Command(long_name));
  std::optional<v1::Ack> refused = e1->NextAck();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
}

// The stream's history query: wire events, the latest page for a new joiner.
TEST_P(GroupsvcContractTest, TheStreamsHistoryQueryAnswersInTheAck) {
  auto edge = AttachedEdge("edge-hq", "hq!");
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(GroupSend("chat_hq", ChatJson(absl::StrCat("m", i))).ok());
  }
  v1::Command ask;
  ask.set_request_id(1);
  ask.mutable_history()->set_group("chat_hq");
  ask.mutable_history()->set_latest(true);
  ask.mutable_history()->set_page_size(2);
  ASSERT_TRUE(edge->Command(ask));
  std::optional<v1::Ack> ack = edge->NextAck();
  ASSERT_TRUE(ack.has_value());
  const v1::HistoryReply& reply = ack->history();
  EXPECT_EQ(reply.latest_offset(), 4u);
  EXPECT_FALSE(reply.recovered());
  ASSERT_EQ(reply.events_size(), 2);
  EXPECT_EQ(reply.events(0).offset(), 3u);
  EXPECT_EQ(reply.events(1).group(), "chat_hq");
  EXPECT_NE(reply.events(1).event().json().find(R"("message":"m4")"), std::string::npos);
  EXPECT_FALSE(reply.epoch().empty());
}

TEST_P(GroupsvcContractTest, OtherGroupsSeeNothing) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  AddOk(*e1, 1, "room_a", "e1!a");
  AddOk(*e1, 2, "room_b", "e1!b");
  ASSERT_TRUE(GroupSend("room_a", ChatJson("only a")).ok());
  std::optional<v1::Delivery> d = e1->NextDelivery();
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->channels_size(), 1);
  EXPECT_EQ(d->channels(0), "e1!a");
  EXPECT_FALSE(e1->NextDelivery(absl::Milliseconds(200)).has_value());
}

TEST_P(GroupsvcContractTest, SendToAFullChannelIsResourceExhausted) {
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext context;
    v1::SendRequest request;
    request.set_channel("backend.worker");
    *request.mutable_event() = JsonStruct(R"({"type":"job.run"})");
    v1::SendResponse response;
    ASSERT_TRUE(stub_->Send(&context, request, &response).ok()) << i;
  }
  grpc::ClientContext context;
  v1::SendRequest request;
  request.set_channel("backend.worker");
  *request.mutable_event() = JsonStruct(R"({"type":"job.run"})");
  v1::SendResponse response;
  grpc::Status status = stub_->Send(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("channel full"), std::string::npos);
  EXPECT_EQ(Stats().drops().at("channel_full"), 1u);
}

TEST_P(GroupsvcContractTest, InvalidInputsNameTheRule) {
  {
    grpc::ClientContext context;
    v1::GroupAddRequest request;
    request.set_group("bad group!");
    request.set_channel("c");
    v1::GroupAddResponse response;
    grpc::Status s = stub_->GroupAdd(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("Group name must be"), std::string::npos);
  }
  {
    grpc::ClientContext context;
    v1::GroupAddRequest request;
    request.set_group("g");
    request.set_channel("a!b!c");
    v1::GroupAddResponse response;
    grpc::Status s = stub_->GroupAdd(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("Channel name must be"), std::string::npos);
  }
  {
    grpc::Status s = GroupSend("g", R"({"message":"no type"})");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("\"type\""), std::string::npos);
  }
  {
    grpc::Status s = GroupSend("g", ChatJson(std::string(300 << 10, 'x')));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("exceeds the limit of 262144 bytes"), std::string::npos)
        << s.error_message();
  }
  {
    // Beyond what gRPC itself takes in one message.
    grpc::Status s = GroupSend("g", ChatJson(std::string(5 << 20, 'x')));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    grpc::ClientContext context;
    v1::ReceiveRequest request;
    request.set_channel("c");
    request.mutable_timeout()->set_seconds(61);
    v1::ReceiveResponse response;
    EXPECT_EQ(stub_->Receive(&context, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_P(GroupsvcContractTest, InvalidStreamCommandsAreAnsweredNotFatal) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  ASSERT_TRUE(e1->GroupAdd(7, "bad group", "e1!a"));
  std::optional<v1::Ack> ack = e1->NextAck();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->request_id(), 7u);
  EXPECT_EQ(ack->code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(ack->message().find("Group name must be"), std::string::npos);

  ASSERT_TRUE(e1->GroupSend(8, "room", "", "{}"));
  ack = e1->NextAck();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));

  ASSERT_TRUE(e1->GroupSend(9, "room", "chat.message", std::string(300 << 10, 'x')));
  ack = e1->NextAck();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(ack->message().find("exceeds the limit"), std::string::npos);

  v1::Command empty;
  empty.set_request_id(10);
  ASSERT_TRUE(e1->Command(empty));
  ack = e1->NextAck();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));

  // The stream still works.
  AddOk(*e1, 11, "room", "e1!a");
}

TEST_P(GroupsvcContractTest, CommandsBeforeHelloEndTheStream) {
  TestEdge rude(channel_, "edge-1", "e1!");
  ASSERT_TRUE(rude.GroupAdd(1, "room", "e1!a"));
  std::optional<grpc::Status> status = rude.WaitEnded(absl::Seconds(5));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status->error_message().find("hello"), std::string::npos);
}

TEST_P(GroupsvcContractTest, BadHelloIsRefused) {
  TestEdge edge(channel_, "edge 1", "e1!");
  grpc::Status s = edge.Hello();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  TestEdge edge2(channel_, "edge-2", "no-bang");
  s = edge2.Hello();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("channel_prefix"), std::string::npos);
}

TEST_P(GroupsvcContractTest, CutStreamRemovesItsMembersWithinOneSecond) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  auto e2 = AttachedEdge("edge-2", "e2!");
  AddOk(*e1, 1, "room", "e1!a");
  AddOk(*e1, 2, "other", "e1!b");
  AddOk(*e2, 3, "room", "e2!z");
  e1->Cancel();
  ASSERT_TRUE(WaitGroupSize("room", 1));
  v1::Group group;
  ASSERT_TRUE(GetGroup("room", &group).ok());
  ASSERT_EQ(group.members_size(), 1);
  EXPECT_EQ(group.members(0).channel(), "e2!z");
  EXPECT_EQ(group.members(0).edge_id(), "edge-2");
  EXPECT_EQ(GetGroup("other", &group).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Stats().attached_edges(), 1u);
}

TEST_P(GroupsvcContractTest, ClosedStreamAlsoRemovesItsMembers) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  AddOk(*e1, 1, "room", "e1!a");
  EXPECT_TRUE(e1->Close().ok());
  EXPECT_TRUE(WaitGroupSize("room", 0));
}

TEST_P(GroupsvcContractTest, SameIncarnationReplacesTheOlderStream) {
  auto old_stream = AttachedEdge("edge-1", "e1!");
  AddOk(*old_stream, 1, "room", "e1!a");
  // The same process reconnecting (its old stream may be half-dead).
  auto new_stream =
      std::make_unique<TestEdge>(channel_, "edge-1", "e1!", old_stream->incarnation());
  ASSERT_TRUE(new_stream->Hello().ok());
  std::optional<grpc::Status> ended = old_stream->WaitEnded(absl::Seconds(5));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::ABORTED);
  EXPECT_NE(ended->error_message().find("replaced"), std::string::npos);
  AddOk(*new_stream, 2, "room", "e1!a");
  ASSERT_TRUE(GroupSend("room", ChatJson("to the new stream")).ok());
  EXPECT_TRUE(new_stream->NextDelivery().has_value());
}

TEST_P(GroupsvcContractTest, AnotherProcessWithTheSameEdgeIdIsRefused) {
  auto first = AttachedEdge("edge-1", "e1!");
  AddOk(*first, 1, "room", "e1!a");
  for (const char* prefix : {"e1!", "other!"}) {
    TestEdge second(channel_, "edge-1", prefix);  // Another incarnation.
    grpc::Status s = second.Hello();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << prefix;
    EXPECT_NE(s.error_message().find("edge id \"edge-1\" is attached by another process (from "),
              std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("give each edge process its own --edge_id"),
              std::string::npos);
  }
  // The first stream is untouched: still open, its members kept, deliveries flowing.
  EXPECT_FALSE(first->WaitEnded(absl::Milliseconds(200)).has_value());
  v1::Group group;
  ASSERT_TRUE(GetGroup("room", &group).ok());
  ASSERT_EQ(group.members_size(), 1);
  EXPECT_EQ(group.members(0).channel(), "e1!a");
  v1::GroupSendResponse response;
  ASSERT_TRUE(GroupSend("room", ChatJson("still here"), &response).ok());
  EXPECT_EQ(response.delivered(), 1u);
  std::optional<v1::Delivery> d = first->NextDelivery();
  ASSERT_TRUE(d.has_value());
  EXPECT_NE(d->event().json().find("still here"), std::string::npos);
  AddOk(*first, 2, "room", "e1!b");
  EXPECT_EQ(Stats().attached_edges(), 1u);
}

TEST_P(GroupsvcContractTest, HelloWithoutA16ByteIncarnationIsInvalidArgument) {
  for (const std::string& incarnation : {std::string(), std::string(15, 'x')}) {
    TestEdge edge(channel_, "edge-1", "e1!", incarnation);
    grpc::Status s = edge.Hello();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << incarnation.size();
    EXPECT_NE(s.error_message().find("incarnation"), std::string::npos) << s.error_message();
  }
  EXPECT_EQ(Stats().attached_edges(), 0u);
}

TEST_P(GroupsvcContractTest, NoRpcShowsTheIncarnation) {
  const std::string secret = "a-secret-of-the-edge-process";
  TestEdge edge(channel_, "edge-1", "e1!", secret);
  ASSERT_TRUE(edge.Hello().ok());
  AddOk(edge, 1, "room", "e1!a");
  std::string seen;
  v1::Group group;
  ASSERT_TRUE(GetGroup("room", &group).ok());
  seen += group.SerializeAsString();
  seen += Stats().SerializeAsString();
  grpc::ClientContext context;
  v1::ListGroupsResponse groups;
  ASSERT_TRUE(stub_->ListGroups(&context, v1::ListGroupsRequest(), &groups).ok());
  seen += groups.SerializeAsString();
  EXPECT_NE(seen.find("edge-1"), std::string::npos);
  EXPECT_EQ(seen.find(secret), std::string::npos);
}

TEST_P(GroupsvcContractTest, CancelledStreamLeavesItsGroupsUnsettledUntilItReplays) {
  auto lost = AttachedEdge("edge-1", "e1!");
  auto other = AttachedEdge("edge-2", "e2!");
  AddOk(*lost, 1, "room", "e1!a");
  AddOk(*other, 2, "room", "e2!b");
  AddOk(*other, 3, "quiet", "e2!c");
  EXPECT_FALSE(StreamGroupSend(*other, 4, "room").unsettled());
  const std::string incarnation = lost->incarnation();
  lost->Cancel();
  ASSERT_TRUE(WaitGroupSize("room", 1));
  // The room's members on edge-1 are out of sight: the sender is told.
  v1::Ack ack = StreamGroupSend(*other, 5, "room");
  EXPECT_EQ(ack.code(), 0);
  EXPECT_EQ(ack.delivered(), 1u);
  EXPECT_TRUE(ack.unsettled());
  EXPECT_FALSE(StreamGroupSend(*other, 6, "quiet").unsettled());
  v1::GroupSendResponse response;
  ASSERT_TRUE(GroupSend("room", ChatJson("unary"), &response).ok());
  EXPECT_TRUE(response.unsettled());
  // edge-1 comes back with its replay in its first message: settled again.
  TestEdge back(channel_, "edge-1", "e1!", incarnation);
  v1::EdgeMessage first;
  first.mutable_hello()->set_edge_id("edge-1");
  first.mutable_hello()->set_channel_prefix("e1!");
  first.mutable_hello()->set_incarnation(incarnation);
  v1::Command* replay = first.add_commands();
  replay->set_request_id(1);
  replay->mutable_group_add()->set_group("room");
  replay->mutable_group_add()->set_channel("e1!a");
  ASSERT_TRUE(back.Write(first));
  std::optional<v1::Ack> replayed = back.NextAck();
  ASSERT_TRUE(replayed.has_value());
  EXPECT_EQ(replayed->code(), 0) << replayed->message();
  ack = StreamGroupSend(*other, 7, "room");
  EXPECT_FALSE(ack.unsettled());
  EXPECT_EQ(ack.delivered(), 2u);
}

TEST_P(GroupsvcContractTest, ClosedStreamLeavesNothingUnsettled) {
  auto closing = AttachedEdge("edge-1", "e1!");
  auto other = AttachedEdge("edge-2", "e2!");
  AddOk(*closing, 1, "room", "e1!a");
  AddOk(*other, 2, "room", "e2!b");
  ASSERT_TRUE(closing->Close().ok());
  ASSERT_TRUE(WaitGroupSize("room", 1));
  v1::Ack ack = StreamGroupSend(*other, 3, "room");
  EXPECT_EQ(ack.delivered(), 1u);
  EXPECT_FALSE(ack.unsettled());
}

TEST_P(GroupsvcContractTest, GroupSendsDuringTheWarmupAreUnsettled) {
  ServerOptions options;
  options.registry.warmup = absl::Minutes(10);
  StartServer(options);
  auto edge = AttachedEdge("edge-1", "e1!");
  AddOk(*edge, 1, "room", "e1!a");
  v1::Ack ack = StreamGroupSend(*edge, 2, "room");
  EXPECT_EQ(ack.delivered(), 1u);
  EXPECT_TRUE(ack.unsettled());
  v1::GroupSendResponse response;
  ASSERT_TRUE(GroupSend("nobody_here", ChatJson("hi"), &response).ok());
  EXPECT_EQ(response.delivered(), 0u);
  EXPECT_TRUE(response.unsettled());
}

TEST_P(GroupsvcContractTest, UnparsableRequestsAreInvalidArgument) {
  const std::string kGroupSend = "/groupsvc.v1.ChannelLayer/GroupSend";
  // A valid request first: the raw path itself works.
  v1::GroupSendRequest valid;
  valid.set_group("room");
  *valid.mutable_event() = JsonStruct(ChatJson("hi"));
  grpc::ByteBuffer answer;
  ASSERT_TRUE(RawCall(kGroupSend, valid.SerializeAsString(), &answer).ok());
  const struct {
    const char* what;
    std::string bytes;
  } cases[] = {
      {"garbage", std::string("\xff\xff\xff\xff\xff\x01garbage", 13)},
      {"string field not UTF-8", std::string("\x0a\x02\xc3\x28", 4)},
      {"nested beyond protobuf's limit", NestedGroupSend(40)},
  };
  for (const auto& c : cases) {
    grpc::Status s = RawCall(kGroupSend, c.bytes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_NE(s.error_message().find("is not a valid groupsvc.v1.GroupSendRequest"),
              std::string::npos)
        << c.what << ": " << s.error_message();
  }
  // Every unary method parses its request itself.
  for (const char* method : {"Send", "Receive", "NewChannel", "GroupAdd", "GroupDiscard", "Flush",
                             "ListGroups", "GetGroup", "Stats"}) {
    grpc::Status s = RawCall(absl::StrCat("/groupsvc.v1.ChannelLayer/", method), "\xff\xff");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
  }
}

TEST_P(GroupsvcContractTest, EventNestedTooDeepIsInvalidArgumentInOurWords) {
  const std::string kGroupSend = "/groupsvc.v1.ChannelLayer/GroupSend";
  EXPECT_TRUE(RawCall(kGroupSend, NestedGroupSend(32)).ok());
  for (int depth : {33, 34}) {
    grpc::Status s = RawCall(kGroupSend, NestedGroupSend(depth));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << depth;
    EXPECT_EQ(s.error_message(), "event nests objects and arrays more than 32 levels deep")
        << depth;
  }
  // As deep as allowed goes there and back.
  v1::SendRequest send;
  send.set_channel("backend.deep");
  v1::GroupSendRequest nested;
  ASSERT_TRUE(nested.ParseFromString(NestedGroupSend(32)));
  *send.mutable_event() = nested.event();
  ASSERT_TRUE(RawCall("/groupsvc.v1.ChannelLayer/Send", send.SerializeAsString()).ok());
  grpc::ClientContext context;
  v1::ReceiveRequest receive;
  receive.set_channel("backend.deep");
  v1::ReceiveResponse received;
  ASSERT_TRUE(stub_->Receive(&context, receive, &received).ok());
  EXPECT_EQ(received.event().fields().at("type").string_value(), "chat.message");
  // A stream's event is JSON text groupsvc passes on unparsed; one too deep
  // for a Struct still reaches the receiver, as its JSON (it is not lost).
  auto edge = AttachedEdge("edge-1", "e1!");
  std::string deep = R"({"type":"x","x":)";
  for (int i = 0; i < 60; ++i) deep += R"({"x":)";
  deep += "1" + std::string(61, '}');
  ASSERT_TRUE(edge->Send(1, "backend.deeper", "x", deep));
  ASSERT_EQ(edge->NextAck()->code(), 0);
  grpc::ClientContext context2;
  receive.set_channel("backend.deeper");
  received.Clear();
  ASSERT_TRUE(stub_->Receive(&context2, receive, &received).ok());
  EXPECT_FALSE(received.has_event());
  EXPECT_EQ(received.json(), deep);
}

TEST_P(GroupsvcContractTest, UnparsableStreamMessageEndsTheStreamWithInvalidArgument) {
  auto edge = AttachedEdge("edge-1", "e1!");
  AddOk(*edge, 1, "room", "e1!a");
  v1::EdgeMessage hello;
  hello.mutable_hello()->set_edge_id("edge-2");
  hello.mutable_hello()->set_channel_prefix("e2!");
  hello.mutable_hello()->set_incarnation(TestEdge::RandomIncarnation());
  int read = 0;
  grpc::Status status =
      RawStream("/groupsvc.v1.ChannelLayer/Attach",
                {hello.SerializeAsString(), std::string("\x12\x05\xff\xff\xff\xff\xff", 7)}, &read);
  EXPECT_EQ(read, 1);  // The welcome.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("is not a valid groupsvc.v1.EdgeMessage"),
            std::string::npos)
      << status.error_message();
  // Only that stream ended.
  ASSERT_TRUE(WaitGroupSize("room", 1));
  AddOk(*edge, 2, "room", "e1!b");
}

TEST_P(GroupsvcContractTest, UnparsableHealthRequestsAreInvalidArgument) {
  grpc::Status s = RawCall("/grpc.health.v1.Health/Check", "\xff\xff");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("grpc.health.v1.HealthCheckRequest"), std::string::npos)
      << s.error_message();
  s = RawStream("/grpc.health.v1.Health/Watch", {"\xff\xff"});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // And a valid Watch still works.
  grpc::health::v1::HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  grpc::ClientContext context;
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  auto watch = stub->Watch(&context, unknown);
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN);
  context.TryCancel();
}

TEST_P(GroupsvcContractTest, ReceiveWaitsUpToItsTimeout) {
  grpc::ClientContext context;
  v1::ReceiveRequest request;
  request.set_channel("backend.inbox");
  request.mutable_timeout()->set_nanos(300'000'000);
  v1::ReceiveResponse response;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(stub_->Receive(&context, request, &response).ok());
  EXPECT_FALSE(response.has_event());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(290));
}

TEST_P(GroupsvcContractTest, ReceiveGetsAnEventSentWhileWaiting) {
  std::thread sender([this] {
    absl::SleepFor(absl::Milliseconds(200));
    grpc::ClientContext context;
    v1::SendRequest request;
    request.set_channel("backend.inbox");
    *request.mutable_event() = JsonStruct(R"({"type":"job.done","id":7})");
    v1::SendResponse response;
    EXPECT_TRUE(stub_->Send(&context, request, &response).ok());
  });
  grpc::ClientContext context;
  v1::ReceiveRequest request;
  request.set_channel("backend.inbox");
  request.mutable_timeout()->set_seconds(10);
  v1::ReceiveResponse response;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(stub_->Receive(&context, request, &response).ok());
  sender.join();
  ASSERT_TRUE(response.has_event());
  EXPECT_EQ(response.event().fields().at("type").string_value(), "job.done");
  EXPECT_EQ(response.event().fields().at("id").number_value(), 7);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_P(GroupsvcContractTest, ReceiveStopsAtTheCallDeadline) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(300)));
  v1::ReceiveRequest request;
  request.set_channel("backend.inbox");
  request.mutable_timeout()->set_seconds(30);
  v1::ReceiveResponse response;
  const absl::Time start = absl::Now();
  grpc::Status s = stub_->Receive(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_P(GroupsvcContractTest, InspectionListsRoomsAndMembers) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  AddOk(*e1, 1, "chat_lobby", "e1!a");
  AddOk(*e1, 2, "chat_lobby", "e1!b");
  AddOk(*e1, 3, "chat_kitchen", "e1!c");
  grpc::ClientContext context;
  v1::ListGroupsRequest request;
  request.set_name_prefix("chat_");
  v1::ListGroupsResponse response;
  ASSERT_TRUE(stub_->ListGroups(&context, request, &response).ok());
  ASSERT_EQ(response.groups_size(), 2);
  EXPECT_EQ(response.groups(0).name(), "chat_kitchen");
  EXPECT_EQ(response.groups(1).name(), "chat_lobby");
  EXPECT_EQ(response.groups(1).size(), 2u);

  v1::Group group;
  ASSERT_TRUE(GetGroup("chat_lobby", &group).ok());
  ASSERT_EQ(group.members_size(), 2);
  EXPECT_EQ(group.members(0).edge_id(), "edge-1");
  EXPECT_GT(group.members(0).joined().seconds(), 1'700'000'000);
}

TEST_P(GroupsvcContractTest, FlushEmptiesTheLayer) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  AddOk(*e1, 1, "chat_lobby", "e1!a");
  grpc::ClientContext context;
  v1::FlushResponse response;
  ASSERT_TRUE(stub_->Flush(&context, v1::FlushRequest(), &response).ok());
  EXPECT_EQ(Stats().groups(), 0u);
  EXPECT_EQ(Stats().attached_edges(), 1u);
}

TEST_P(GroupsvcContractTest, HealthServesUntilShutdown) {
  using grpc::health::v1::HealthCheckResponse;
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  HealthCheckResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest unknown;
    unknown.set_service("no.such.Service");
    EXPECT_EQ(health->Check(&context, unknown, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // A watcher sees every change: SERVING now, NOT_SERVING once shutdown
  // begins (before the streams drain), then the end of the watch.
  grpc::ClientContext watch_context;
  watch_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto watch = health->Watch(&watch_context, request);
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  auto edge = AttachedEdge("edge-1", "e1!");
  std::thread stopper([this] { server_->Shutdown(absl::Seconds(5)); });
  std::vector<HealthCheckResponse::ServingStatus> seen;
  while (watch->Read(&response)) seen.push_back(response.status());
  grpc::Status ended = watch->Finish();
  stopper.join();
  EXPECT_EQ(seen,
            std::vector<HealthCheckResponse::ServingStatus>{HealthCheckResponse::NOT_SERVING});
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE);
  // Once shut down, nothing answers SERVING any more.
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::Status after = health->Check(&context, request, &response);
  EXPECT_EQ(after.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_P(GroupsvcContractTest, ShutdownDrainsAttachedEdges) {
  auto e1 = AttachedEdge("edge-1", "e1!");
  AddOk(*e1, 1, "room", "e1!a");
  std::thread stopper([this] { server_->Shutdown(absl::Seconds(5)); });
  EXPECT_TRUE(e1->WaitDraining(absl::Seconds(5)));
  std::optional<grpc::Status> ended = e1->WaitEnded(absl::Seconds(5));
  stopper.join();
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAVAILABLE);
  // A new edge is refused while (and after) draining.
  TestEdge late(channel_, "edge-2", "e2!");
  EXPECT_FALSE(late.Hello().ok());
}

TEST_P(GroupsvcContractTest, CapacityIsConfigurablePerPattern) {
  ServerOptions options;
  options.registry.capacity_overrides = {{"small.*", 1}};
  StartServer(options);
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    v1::SendRequest request;
    request.set_channel("small.one");
    *request.mutable_event() = JsonStruct(R"({"type":"x"})");
    v1::SendResponse response;
    grpc::Status s = stub_->Send(&context, request, &response);
    EXPECT_EQ(s.error_code(), i == 0 ? grpc::StatusCode::OK : grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
}

// ------------------------------------------------------------------ users

TEST_P(GroupsvcContractTest, AUsersConnectionsAreCappedAcrossEdgesAndFallWhenAnEdgeIsCut) {
  auto e1 = AttachedEdge("edge-1", "edge-1.aaaa!");
  auto e2 = AttachedEdge("edge-2", "edge-2.bbbb!");
  ASSERT_TRUE(e1->UserConnect(1, "u1", "edge-1.aaaa!c1", 2));
  ASSERT_TRUE(e2->UserConnect(2, "u1", "edge-2.bbbb!c1", 2));
  ASSERT_TRUE(e2->UserConnect(3, "u1", "edge-2.bbbb!c2", 2));
  std::optional<v1::Ack> first = e1->NextAck();
  std::optional<v1::Ack> second = e2->NextAck();
  std::optional<v1::Ack> third = e2->NextAck();
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(first->code(), 0) << first->message();
  EXPECT_EQ(second->code(), 0) << second->message();
  EXPECT_EQ(third->code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(third->message().find("already has 2 connections"), std::string::npos)
      << third->message();
  EXPECT_EQ(Stats().user_connections(), 2u);
  // edge-1 crashes: the user may connect again at once.
  e1->Cancel();
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (Stats().user_connections() != 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(e2->UserConnect(4, "u1", "edge-2.bbbb!c2", 2));
  std::optional<v1::Ack> again = e2->NextAck();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->code(), 0) << again->message();
}

TEST_P(GroupsvcContractTest, OperatorsListDisconnectAndRemoveAUserOnEveryEdge) {
  auto e1 = AttachedEdge("edge-1", "edge-1.aaaa!");
  auto e2 = AttachedEdge("edge-2", "edge-2.bbbb!");
  ASSERT_TRUE(e1->UserConnect(1, "u1", "edge-1.aaaa!c1", 0, "lobby"));
  ASSERT_TRUE(e2->UserConnect(2, "u1", "edge-2.bbbb!c1", 0, "garden"));
  ASSERT_TRUE(e1->NextAck() && e2->NextAck());

  v1::GetUserRequest who;
  who.set_user_id("u1");
  v1::GetUserResponse user;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->GetUser(&context, who, &user).ok());
  }
  EXPECT_EQ(user.name(), "Name of u1");
  ASSERT_EQ(user.connections_size(), 2);
  EXPECT_EQ(user.connections(0).edge_id(), "edge-1");
  EXPECT_EQ(user.connections(0).room(), "lobby");
  EXPECT_EQ(user.connections(1).channel(), "edge-2.bbbb!c1");
  EXPECT_GT(user.connections(0).since().seconds(), 0);

  {
    v1::RemoveFromGroupRequest request;
    request.set_user_id("u1");
    request.set_group("chat_garden");
    v1::RemoveFromGroupResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->RemoveFromGroup(&context, request, &response).ok());
    EXPECT_EQ(response.edges(), 2u);
  }
  std::optional<v1::CloseConnections> removed = e2->NextClose();
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->group(), "chat_garden");
  EXPECT_EQ(removed->code(), 4011u);
  ASSERT_TRUE(e1->NextClose().has_value());

  {
    v1::DisconnectRequest request;
    request.set_user_id("u1");
    request.set_code(4242);
    request.set_reason("spam");
    v1::DisconnectResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Disconnect(&context, request, &response).ok());
    EXPECT_EQ(response.connections(), 2u);
  }
  for (TestEdge* edge : {e1.get(), e2.get()}) {
    std::optional<v1::CloseConnections> close = edge->NextClose();
    ASSERT_TRUE(close.has_value());
    EXPECT_EQ(close->user_id(), "u1");
    EXPECT_EQ(close->group(), "");
    EXPECT_EQ(close->code(), 4242u);
    EXPECT_EQ(close->reason(), "spam");
  }
  {
    grpc::ClientContext context;
    user.Clear();
    ASSERT_TRUE(stub_->GetUser(&context, who, &user).ok());
    EXPECT_EQ(user.connections_size(), 0);
  }
  {
    v1::DisconnectRequest request;
    request.set_user_id("u1");
    request.set_code(1000);
    v1::DisconnectResponse response;
    grpc::ClientContext context;
    grpc::Status s = stub_->Disconnect(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("4000 to 4999"), std::string::npos) << s.error_message();
  }
}

INSTANTIATE_TEST_SUITE_P(Loops, GroupsvcContractTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat(info.param, "Loop", info.param > 1 ? "s" : "");
                         });

}  // namespace
}  // namespace groupsvc
