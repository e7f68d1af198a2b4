// End-to-end tests of a room's state beyond its messages: names, presence,
// and the history a chat.v2 client recovers after a reconnect. Real groupsvc
// and edge binaries on loopback ports, real WebSockets and gRPC.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "groupsvc/v1/layer.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/http_get.h"
#include "tests/support/ws_client.h"

namespace chat::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

std::string Chat(const std::string& m) { return absl::StrCat(R"({"message":")", m, R"("})"); }

std::unique_ptr<ChildProcess> StartLogged(std::vector<std::string> argv, int* port) {
  auto p = ChildProcess::Start(std::move(argv));
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return nullptr;
  absl::StatusOr<int> got = (*p)->WaitForField(" listening ", "port", absl::Seconds(20));
  EXPECT_TRUE(got.ok()) << got.status();
  *port = got.value_or(0);
  return *std::move(p);
}

// One frame as JSON (an empty object if it is not one).
json::object Parse(const std::string& frame) {
  boost::system::error_code ec;
  json::value v = json::parse(frame, ec);
  return !ec && v.is_object() ? v.get_object() : json::object();
}

std::string TypeOf(const json::object& o) {
  const json::value* t = o.if_contains("type");
  return t != nullptr && t->is_string() ? std::string(t->as_string()) : "";
}

class RoomStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_ = absl::StrCat(::testing::TempDir(), "/room-state-secret");
    FILE* f = fopen(secret_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("room-state-secret-0123456789abcdef0123\n", f);
    fclose(f);
    StartGroupsvc("--listen=127.0.0.1:0");
    ASSERT_NE(groupsvc_port_, 0);
    edge_a_ = StartEdge("edge-a", &port_a_);
    edge_b_ = StartEdge("edge-b", &port_b_);
    ASSERT_TRUE(WaitReady(port_a_, true) && WaitReady(port_b_, true));
  }

  void StartGroupsvc(const std::string& listen) {
    groupsvc_ = StartLogged({GROUPSVC_BIN, listen, "--metrics_listen=", "--warmup=0s",
                             "--presence_debounce=2s", "--history_ttl=3s"},
                            &groupsvc_port_);
  }

  std::unique_ptr<ChildProcess> StartEdge(const std::string& id, int* port) {
    return StartLogged({EDGE_BIN, "--listen=127.0.0.1:0",
                        "--metrics_listen=", absl::StrCat("--groupsvc=127.0.0.1:", groupsvc_port_),
                        absl::StrCat("--edge_id=", id), absl::StrCat("--jwt_secret_file=", secret_),
                        "--join_history=5"},
                       port);
  }

  // A token for "id:Name", as `edge --mint_token` prints it.
  std::string Mint(const std::string& user) {
    const std::string out = absl::StrCat(::testing::TempDir(), "/token-", user.substr(0, 3));
    const std::string command =
        absl::StrCat(EDGE_BIN, " --jwt_secret_file=", secret_, " --mint_token=", user, " > ", out);
    EXPECT_EQ(system(command.c_str()), 0);
    FILE* f = fopen(out.c_str(), "r");
    char buffer[2048] = {};
    if (f == nullptr || fgets(buffer, sizeof(buffer), f) == nullptr) ADD_FAILURE() << "no token";
    if (f != nullptr) fclose(f);
    return std::string(absl::StripAsciiWhitespace(buffer));
  }

  // A chat.v2 client; `query` without '?'.
  static std::unique_ptr<WsClient> V2(int port, const std::string& room, const std::string& query) {
    auto c = WsClient::Connect(
        port, absl::StrCat("/ws/chat/", room, "/", query.empty() ? "" : "?", query),
        {{"Sec-WebSocket-Protocol", "chat.v2"}});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Frames until one of `type` (returned); the others are appended to `before`.
  static json::object NextOf(WsClient& c, const std::string& type,
                             std::vector<json::object>* before = nullptr,
                             absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> frame = c.Read(deadline - absl::Now());
      if (!frame.ok()) break;
      json::object o = Parse(*frame);
      if (TypeOf(o) == type) return o;
      if (before != nullptr) before->push_back(std::move(o));
    }
    ADD_FAILURE() << "no \"" << type << "\" frame";
    return {};
  }

  // The messages among `frames`, in order.
  static std::vector<std::string> Messages(const std::vector<json::object>& frames) {
    std::vector<std::string> out;
    for (const json::object& o : frames) {
      if (TypeOf(o) == "message") out.emplace_back(o.at("message").as_string());
    }
    return out;
  }

  groupsvc::v1::GetPresenceResponse GetPresence(const std::string& group) {
    auto stub = groupsvc::v1::ChannelLayer::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", groupsvc_port_), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    groupsvc::v1::GetPresenceRequest request;
    request.set_group(group);
    groupsvc::v1::GetPresenceResponse response;
    grpc::Status status = stub->GetPresence(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::string secret_;
  std::unique_ptr<ChildProcess> groupsvc_, edge_a_, edge_b_;
  int groupsvc_port_ = 0, port_a_ = 0, port_b_ = 0;
};

TEST_F(RoomStateTest, ANewJoinerGetsTheRoomsLatestMessagesThenJoined) {
  auto sender = WsClient::Connect(port_a_, "/ws/chat/latest/");
  ASSERT_TRUE(sender.ok());
  for (int i = 1; i <= 7; ++i) {
    ASSERT_TRUE((*sender)->SendText(Chat(absl::StrCat("m", i))));
    ASSERT_EQ((*sender)->Read().value_or(""), Chat(absl::StrCat("m", i)));
  }
  auto joiner = V2(port_b_, "latest", "");
  ASSERT_TRUE(joiner);
  std::vector<json::object> before;
  json::object joined = NextOf(*joiner, "joined", &before);
  // --join_history=5: the latest five, oldest first, each with its offset.
  EXPECT_THAT(Messages(before), ::testing::ElementsAre("m3", "m4", "m5", "m6", "m7"));
  EXPECT_EQ(joined["history"].as_int64(), 5);
  EXPECT_EQ(joined["offset"].as_int64(), 7);
  EXPECT_FALSE(joined["epoch"].as_string().empty());
  // A tutorial client gets none of it: its first frame is the next message.
  auto v1 = WsClient::Connect(port_b_, "/ws/chat/latest/");
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE((*sender)->SendText(Chat("m8")));
  EXPECT_EQ((*v1)->Read().value_or(""), Chat("m8"));
  json::object m8 = NextOf(*joiner, "message");
  EXPECT_EQ(m8["offset"].as_int64(), 8);
}

TEST_F(RoomStateTest, AReconnectWithSinceGetsEveryMissedMessageOnceInOrderWhileOthersSend) {
  auto a = V2(port_a_, "recover", "");
  ASSERT_TRUE(a);
  json::object joined = NextOf(*a, "joined");
  const std::string epoch(joined["epoch"].as_string());
  auto sender = WsClient::Connect(port_b_, "/ws/chat/recover/");
  ASSERT_TRUE(sender.ok());
  ASSERT_TRUE((*sender)->SendText(Chat("m0")));
  json::object m0 = NextOf(*a, "message");
  ASSERT_EQ(m0["message"].as_string(), "m0");
  const int64_t since = m0["offset"].as_int64();
  a->Close();                               // The tab's socket is cut.
  constexpr int kMissed = 5, kDuring = 60;  // All within --history_size (100).
  for (int i = 1; i <= kMissed; ++i) {
    ASSERT_TRUE((*sender)->SendText(Chat(absl::StrCat("m", i))));
  }
  // The sender hears its own m5 once the room has it (m0 came back first).
  for (int i = 0; i <= kMissed; ++i) {
    ASSERT_EQ((*sender)->Read().value_or(""), Chat(absl::StrCat("m", i)));
  }
  // More arrive while the tab reconnects: the history and the live messages meet.
  std::thread during([&] {
    for (int i = kMissed + 1; i <= kMissed + kDuring; ++i) {
      if (!(*sender)->SendText(Chat(absl::StrCat("m", i)))) return;
    }
  });
  auto back = V2(port_a_, "recover", absl::StrCat("since=", since, "&epoch=", epoch));
  ASSERT_TRUE(back);
  std::vector<json::object> recovered_first;
  json::object recovered = NextOf(*back, "recovered", &recovered_first);
  std::vector<json::object> after;
  const std::string last = absl::StrCat("m", kMissed + kDuring);
  while (Messages(after).empty() || Messages(after).back() != last) {
    absl::StatusOr<std::string> frame = back->Read();
    if (!frame.ok()) break;
    after.push_back(Parse(*frame));
    if (TypeOf(after.back()) == "message" && after.back()["message"].as_string() == last) break;
  }
  during.join();
  EXPECT_TRUE(recovered["recovered"].as_bool()) << json::serialize(recovered);
  // Before the frame: exactly what was missed so far, from m1 on.
  std::vector<std::string> got = Messages(recovered_first);
  EXPECT_EQ(recovered["missed"].as_int64(), static_cast<int64_t>(got.size()));
  ASSERT_GE(got.size(), static_cast<size_t>(kMissed));
  for (const std::string& m : Messages(after)) got.push_back(m);
  std::vector<std::string> want;
  for (int i = 1; i <= kMissed + kDuring; ++i) want.push_back(absl::StrCat("m", i));
  EXPECT_EQ(got, want);  // Every one, once, in order.
}

TEST_F(RoomStateTest, AfterGroupsvcRestartsAReconnectIsNotRecovered) {
  auto a = V2(port_a_, "restart", "");
  ASSERT_TRUE(a);
  const std::string epoch(NextOf(*a, "joined")["epoch"].as_string());
  ASSERT_TRUE(a->SendText(Chat("before")));
  const int64_t since = NextOf(*a, "message")["offset"].as_int64();
  a->Close();
  const int port = groupsvc_port_;
  groupsvc_->Signal(SIGKILL);
  ASSERT_TRUE(groupsvc_->WaitExit(absl::Seconds(5)).has_value());
  StartGroupsvc(absl::StrCat("--listen=127.0.0.1:", port));
  ASSERT_EQ(groupsvc_port_, port);
  ASSERT_TRUE(WaitReady(port_a_, true, absl::Seconds(10)));
  auto sender = WsClient::Connect(port_b_, "/ws/chat/restart/");
  ASSERT_TRUE(sender.ok());
  ASSERT_TRUE(WaitReady(port_b_, true, absl::Seconds(10)));
  ASSERT_TRUE((*sender)->SendText(Chat("after")));
  ASSERT_EQ((*sender)->Read().value_or(""), Chat("after"));
  auto back = V2(port_a_, "restart", absl::StrCat("since=", since, "&epoch=", epoch));
  ASSERT_TRUE(back);
  std::vector<json::object> first;
  json::object recovered = NextOf(*back, "recovered", &first);
  EXPECT_FALSE(recovered["recovered"].as_bool());
  EXPECT_THAT(json::serialize(recovered), HasSubstr("history was lost"));
  EXPECT_NE(recovered["epoch"].as_string(), epoch);
  // The latest instead, so the page can say so.
  EXPECT_THAT(Messages(first), ::testing::ElementsAre("after"));
  // A malformed position is no recovery either, and says why.
  auto bad = V2(port_a_, "restart", "since=x&epoch=y");
  ASSERT_TRUE(bad);
  json::object refused = NextOf(*bad, "recovered");
  EXPECT_FALSE(refused["recovered"].as_bool());
  EXPECT_THAT(json::serialize(refused), HasSubstr("since must be an offset"));
}

TEST_F(RoomStateTest, AnIdleRoomIsForgottenAndNumbersAgainUnderAnEpochOfItsOwn) {
  auto a = V2(port_a_, "idle", "");
  auto b = V2(port_b_, "idle", "");
  ASSERT_TRUE(a && b);
  NextOf(*b, "joined");
  ASSERT_TRUE(a->SendText(Chat("m1")));
  ASSERT_EQ(NextOf(*b, "message")["message"].as_string(), "m1");
  json::object m1 = NextOf(*a, "message");
  const std::string epoch(m1["epoch"].as_string());
  ASSERT_EQ(m1["offset"].as_int64(), 1);
  a->Close();
  // --history_ttl=3s: m1 expires, and the room's history is forgotten.
  absl::SleepFor(absl::Milliseconds(4500));
  ASSERT_TRUE(b->SendText(Chat("m2")));
  json::object m2 = NextOf(*b, "message");
  EXPECT_EQ(m2["message"].as_string(), "m2");
  EXPECT_EQ(m2["offset"].as_int64(), 1);
  const std::string fresh(m2["epoch"].as_string());
  EXPECT_THAT(fresh, ::testing::StartsWith(epoch + "-"));
  // The old position belongs to the forgotten numbering: not recovered.
  auto back = V2(port_a_, "idle", absl::StrCat("since=1&epoch=", epoch));
  ASSERT_TRUE(back);
  std::vector<json::object> latest;
  json::object recovered = NextOf(*back, "recovered", &latest);
  EXPECT_FALSE(recovered["recovered"].as_bool());
  EXPECT_EQ(recovered["epoch"].as_string(), fresh);
  EXPECT_THAT(Messages(latest), ::testing::ElementsAre("m2"));
}

TEST_F(RoomStateTest, NamedUsersOnTwoEdgesSeeEachOthersPresenceAndTwoTabsAreOneMember) {
  const std::string ann_token = Mint("ann:Ann"), bo_token = Mint("bo:Bo");
  auto ann = V2(port_a_, "names", "token=" + ann_token);
  ASSERT_TRUE(ann);
  json::object members = NextOf(*ann, "presence");
  EXPECT_EQ(json::serialize(members["members"]), R"([{"id":"ann","name":"Ann"}])");
  auto bo = V2(port_b_, "names", "token=" + bo_token);
  ASSERT_TRUE(bo);
  EXPECT_EQ(json::serialize(NextOf(*bo, "presence")["members"]),
            R"([{"id":"ann","name":"Ann"},{"id":"bo","name":"Bo"}])");
  EXPECT_EQ(json::serialize(NextOf(*ann, "presence")["joined"]), R"({"id":"bo","name":"Bo"})");
  // A second tab of Bo's (the tutorial's protocol) is no new member.
  auto bo_tab = WsClient::Connect(port_a_, "/ws/chat/names/?token=" + bo_token);
  ASSERT_TRUE(bo_tab.ok());
  groupsvc::v1::GetPresenceResponse listed = GetPresence("chat_names");
  ASSERT_EQ(listed.members_size(), 2);
  EXPECT_EQ(listed.members(1).id(), "bo");
  EXPECT_EQ(listed.members(1).connections(), 2u);
  // Bo's message names Bo on Ann's page.
  ASSERT_TRUE(bo->SendText(Chat("hi ann")));
  EXPECT_EQ(json::serialize(NextOf(*ann, "message")["user"]), R"({"id":"bo","name":"Bo"})");
  // One tab goes: Bo stays. The other reconnects at once: no leave, no join.
  (*bo_tab)->Close();
  bo->Close();
  bo = V2(port_b_, "names", "token=" + bo_token);
  ASSERT_TRUE(bo);
  ASSERT_TRUE(ann->SendText(Chat("still here?")));
  std::vector<json::object> between;
  NextOf(*ann, "message", &between);
  absl::SleepFor(absl::Milliseconds(2500));  // Past the debounce.
  ASSERT_TRUE(ann->SendText(Chat("yes")));
  NextOf(*ann, "message", &between);
  for (const json::object& o : between) {
    EXPECT_NE(TypeOf(o), "presence") << json::serialize(o);
  }
  // Bo leaves for good: Ann hears it once the debounce is over.
  bo->Close();
  json::object left = NextOf(*ann, "presence", nullptr, absl::Seconds(4));
  EXPECT_EQ(json::serialize(left["left"]), R"({"id":"bo","name":"Bo"})");
  EXPECT_EQ(GetPresence("chat_names").members_size(), 1);
}

TEST_F(RoomStateTest, AnEdgeCrashRemovesItsUsersWithinASecond) {
  auto ann = V2(port_a_, "crash", "token=" + Mint("ann:Ann"));
  ASSERT_TRUE(ann);
  auto bo = V2(port_b_, "crash", "token=" + Mint("bo:Bo"));
  ASSERT_TRUE(bo);
  EXPECT_EQ(json::serialize(NextOf(*ann, "presence")["members"]), R"([{"id":"ann","name":"Ann"}])");
  EXPECT_EQ(json::serialize(NextOf(*ann, "presence")["joined"]), R"({"id":"bo","name":"Bo"})");
  const absl::Time killed = absl::Now();
  edge_b_->Signal(SIGKILL);
  json::object left = NextOf(*ann, "presence", nullptr, absl::Seconds(3));
  EXPECT_EQ(json::serialize(left["left"]), R"({"id":"bo","name":"Bo"})");
  EXPECT_LT(absl::Now() - killed, absl::Seconds(1));
  EXPECT_EQ(GetPresence("chat_crash").members_size(), 1);
}

}  // namespace
}  // namespace chat::testing
