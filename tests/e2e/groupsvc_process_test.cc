// End-to-end tests of the real groupsvc binary: what an operator with grpcurl
// and a scraper see, and how it stops on SIGTERM.
#include <grpcpp/generic/generic_stub.h>
#include <signal.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/http_get.h"
#include "tests/support/reflection_client.h"
#include "tests/support/test_edge.h"

namespace chat::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsSupersetOf;

class GroupsvcProcessTest : public ::testing::Test {
 protected:
  // No warm-up: group_sends say `unsettled` only when a test makes them.
  void SetUp() override { Start("--warmup=0s"); }

  void Start(const std::string& warmup_flag) {
    auto p = ChildProcess::Start({GROUPSVC_BIN, "--listen=127.0.0.1:0",
                                  "--metrics_listen=127.0.0.1:0", "--grace=10s", warmup_flag});
    ASSERT_TRUE(p.ok()) << p.status();
    process_ = *std::move(p);
    absl::StatusOr<int> port = process_->WaitForField(" listening ", "port", absl::Seconds(20));
    ASSERT_TRUE(port.ok()) << port.status();
    absl::StatusOr<int> metrics =
        process_->WaitForField(" listening ", "metrics_port", absl::Seconds(1));
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    port_ = *port;
    metrics_port_ = *metrics;
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GroupsvcProcessTest, ReflectionDescribesEveryService) {
  ReflectionClient client(channel_);
  absl::StatusOr<std::vector<std::string>> services = client.ListServices();
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, IsSupersetOf({"groupsvc.v1.ChannelLayer", "grpc.health.v1.Health",
                                       "grpc.reflection.v1alpha.ServerReflection"}));
  for (const char* name : {"groupsvc.v1.ChannelLayer", "grpc.health.v1.Health"}) {
    EXPECT_TRUE(client.FindService(name).ok()) << name;
  }
}

TEST_F(GroupsvcProcessTest, HealthCheckThroughReflectionAlone) {
  ReflectionClient client(channel_);
  absl::StatusOr<std::string> out = client.CallJson("grpc.health.v1.Health/Check", "{}");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, R"({"status":"SERVING"})");
}

TEST_F(GroupsvcProcessTest, GrpcurlPathListsInspectsAndSendsIntoRooms) {
  ReflectionClient client(channel_);
  ASSERT_TRUE(client
                  .CallJson("groupsvc.v1.ChannelLayer/GroupAdd",
                            R"({"group": "chat_lobby", "channel": "backend.bot"})")
                  .ok());
  absl::StatusOr<std::string> sent = client.CallJson(
      "groupsvc.v1.ChannelLayer/GroupSend",
      R"({"group": "chat_lobby", "event": {"type": "chat.message", "message": "hi from grpcurl"}})");
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, R"({"delivered":1,"offset":"1"})");

  absl::StatusOr<std::string> listed =
      client.CallJson("groupsvc.v1.ChannelLayer/ListGroups", R"({"namePrefix": "chat_"})");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, R"({"groups":[{"name":"chat_lobby","size":1}]})");

  absl::StatusOr<std::string> group =
      client.CallJson("groupsvc.v1.ChannelLayer/GetGroup", R"({"name": "chat_lobby"})");
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_THAT(*group, HasSubstr(R"("members":[{"channel":"backend.bot","joined":")"));

  absl::StatusOr<std::string> received = client.CallJson(
      "groupsvc.v1.ChannelLayer/Receive", R"({"channel": "backend.bot", "timeout": "1s"})");
  ASSERT_TRUE(received.ok()) << received.status();
  // Struct fields come in no fixed order.
  EXPECT_THAT(*received, HasSubstr(R"("message":"hi from grpcurl")"));
  EXPECT_THAT(*received, HasSubstr(R"("type":"chat.message")"));

  absl::StatusOr<std::string> bad = client.CallJson("groupsvc.v1.ChannelLayer/GroupAdd",
                                                    R"({"group": "no spaces", "channel": "x"})");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("Group name must be"));

  absl::StatusOr<std::string> stats = client.CallJson("groupsvc.v1.ChannelLayer/Stats", "{}");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_THAT(*stats, HasSubstr(R"("eventsIn":"1")"));
}

TEST_F(GroupsvcProcessTest, MetricsAreServedForPrometheus) {
  TestEdge edge(channel_, "edge-1", "e1!");
  ASSERT_TRUE(edge.Hello().ok());
  absl::StatusOr<HttpReply> reply = HttpGet("127.0.0.1", metrics_port_, "/metrics");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->status, 200);
  EXPECT_THAT(reply->body, HasSubstr("groupsvc_attached_edges 1"));
  EXPECT_THAT(reply->body, HasSubstr("groupsvc_drops_total{reason=\"channel_full\"} 0"));
}

TEST_F(GroupsvcProcessTest, AfterAStartGroupSendsAreUnsettledForTheWarmup) {
  process_.reset();
  Start("--warmup=10m");
  ReflectionClient client(channel_);
  absl::StatusOr<std::string> sent = client.CallJson(
      "groupsvc.v1.ChannelLayer/GroupSend",
      R"({"group": "chat_lobby", "event": {"type": "chat.message", "message": "anyone?"}})");
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, R"({"unsettled":true,"offset":"1"})");
  absl::StatusOr<HttpReply> reply = HttpGet("127.0.0.1", metrics_port_, "/metrics");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_THAT(reply->body, HasSubstr("groupsvc_unsettled_group_sends_total 1"));
}

TEST_F(GroupsvcProcessTest, ASecondProcessWithTheSameEdgeIdIsRefusedWithALogLine) {
  TestEdge first(channel_, "edge-1", "e1!");
  ASSERT_TRUE(first.Hello().ok());
  for (int i = 0; i < 3; ++i) {  // It retries; it never takes over.
    TestEdge second(channel_, "edge-1", "e1b!");
    grpc::Status s = second.Hello();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
    EXPECT_THAT(s.error_message(), HasSubstr("give each edge process its own --edge_id"));
  }
  absl::StatusOr<std::string> line = process_->WaitForLine(" stream_refused ", absl::Seconds(5));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_THAT(*line, HasSubstr("edge=edge-1"));
  EXPECT_THAT(*line, HasSubstr("reason=in_use"));
  EXPECT_THAT(*line, HasSubstr("attached by another process (from ipv4:127.0.0.1:"));
  EXPECT_THAT(process_->Output(), ::testing::Not(HasSubstr("edge_replaced")));
  EXPECT_FALSE(first.WaitEnded(absl::Milliseconds(100)).has_value());
}

TEST_F(GroupsvcProcessTest, AStringThatIsNotUtf8IsInvalidArgumentLoggedInOneLine) {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Slice slice(std::string("\x0a\x02\xc3\x28", 4));  // group = C3 28
  grpc::ByteBuffer request(&slice, 1), response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/groupsvc.v1.ChannelLayer/GroupSend", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  absl::StatusOr<std::string> line = process_->WaitForLine(" protobuf_log ", absl::Seconds(5));
  ASSERT_TRUE(line.ok()) << line.status() << process_->Output();
  EXPECT_THAT(*line, HasSubstr("level=error"));
  EXPECT_THAT(*line, HasSubstr("invalid UTF-8"));
  EXPECT_THAT(process_->Output(), ::testing::Not(HasSubstr("[libprotobuf")));
}

TEST_F(GroupsvcProcessTest, SigtermDrainsEdgesAndExitsZero) {
  TestEdge edge(channel_, "edge-1", "e1!");
  ASSERT_TRUE(edge.Hello().ok());
  ASSERT_TRUE(edge.GroupAdd(1, "room", "e1!a"));
  ASSERT_TRUE(edge.NextAck().has_value());
  process_->Signal(SIGTERM);
  EXPECT_TRUE(edge.WaitDraining(absl::Seconds(3)));
  std::optional<grpc::Status> ended = edge.WaitEnded(absl::Seconds(3));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAVAILABLE);
  // Well within the 10 s grace: nothing is left to wait for.
  std::optional<int> code = process_->WaitExit(absl::Seconds(4));
  ASSERT_TRUE(code.has_value()) << "still running 4 s after SIGTERM";
  EXPECT_EQ(*code, 0) << process_->Output();
  EXPECT_THAT(process_->Output(), HasSubstr(" draining signal=Terminated"));
  EXPECT_THAT(process_->Output(), HasSubstr(" stopped"));
}

TEST(GroupsvcGraceTest, SigtermWithAStuckEdgeStillExitsWithinGrace) {
  auto p = ChildProcess::Start({GROUPSVC_BIN, "--listen=127.0.0.1:0",
                                "--metrics_listen=", "--grace=2s", "--edge_queue_bytes=100000"});
  ASSERT_TRUE(p.ok());
  absl::StatusOr<int> port = (*p)->WaitForField(" listening ", "port", absl::Seconds(20));
  ASSERT_TRUE(port.ok());
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", *port), grpc::InsecureChannelCredentials());
  // An edge that stops reading with a backlog: its stream cannot flush, so
  // only the grace period ends it.
  grpc::ClientContext context;
  auto stub = groupsvc::v1::ChannelLayer::NewStub(channel);
  auto stream = stub->Attach(&context);
  groupsvc::v1::EdgeMessage hello;
  hello.mutable_hello()->set_edge_id("stuck");
  hello.mutable_hello()->set_channel_prefix("stuck!");
  hello.mutable_hello()->set_incarnation(TestEdge::RandomIncarnation());
  ASSERT_TRUE(stream->Write(hello));
  groupsvc::v1::EdgeMessage add;
  auto* c = add.add_commands();
  c->mutable_group_add()->set_group("room");
  c->mutable_group_add()->set_channel("stuck!a");
  ASSERT_TRUE(stream->Write(add));
  groupsvc::v1::EdgeMessage send;
  for (int i = 0; i < 64; ++i) {
    auto* s = send.add_commands();
    s->mutable_group_send()->set_group("room");
    s->mutable_group_send()->mutable_event()->set_type("chat.message");
    s->mutable_group_send()->mutable_event()->set_json(std::string(60000, 'x'));
  }
  ASSERT_TRUE(stream->Write(send));
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  (*p)->Signal(SIGTERM);
  std::optional<int> code = (*p)->WaitExit(absl::Seconds(6));
  ASSERT_TRUE(code.has_value()) << (*p)->Output();
  EXPECT_EQ(*code, 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  context.TryCancel();
}

TEST(GroupsvcStartTest, BadFlagsAndBusyPortsExitNonZero) {
  for (const char* flag : {"--capacity=0", "--warmup=-1s", "--unsettled_window=-1s"}) {
    auto bad = ChildProcess::Start({GROUPSVC_BIN, flag});
    ASSERT_TRUE(bad.ok());
    EXPECT_EQ((*bad)->WaitExit(absl::Seconds(10)), 2) << flag;
  }

  auto first = ChildProcess::Start({GROUPSVC_BIN, "--listen=127.0.0.1:0", "--metrics_listen="});
  ASSERT_TRUE(first.ok());
  absl::StatusOr<int> port = (*first)->WaitForField(" listening ", "port", absl::Seconds(20));
  ASSERT_TRUE(port.ok());
  auto second = ChildProcess::Start(
      {GROUPSVC_BIN, absl::StrCat("--listen=127.0.0.1:", *port), "--metrics_listen="});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->WaitExit(absl::Seconds(10)), 1);
  EXPECT_THAT((*second)->Output(), HasSubstr("start_failed"));
}

}  // namespace
}  // namespace chat::testing
