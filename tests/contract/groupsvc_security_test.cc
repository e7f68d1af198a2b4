// Security contract tests (issue 12): a real groupsvc (GroupServer) with TLS,
// mutual TLS for Attach and API tokens, on a loopback port; real gRPC clients
// over real TLS, with certificates made at test time (tests/support/test_certs).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "groupsvc/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/http_get.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_edge.h"

namespace groupsvc {
namespace {

using chat::testing::CertOptions;
using chat::testing::HttpGet;
using chat::testing::KeyAndCert;
using chat::testing::TestCa;
using chat::testing::TestEdge;
using chat::testing::WriteFileAtomically;
using ::testing::HasSubstr;

constexpr char kReader[] = "reader-token-0123456789";
constexpr char kSender[] = "sender-token-0123456789";
constexpr char kAdmin[] = "admin-token-0123456789ab";

const char kTokens[] =
    "# NAME SCOPES TOKEN\n"
    "reader read reader-token-0123456789\n"
    "sender send sender-token-0123456789   # a comment after a token\n"
    "\n"
    "admin read,send,admin admin-token-0123456789ab\n";

// Every channel gets connections of its own, so that a test sees the
// certificates as they are now, never a connection made before.
std::atomic<int> channel_counter{0};

struct ClientTls {
  std::string root_pem = "";             // Trusted CA; empty: the fixture's CA.
  const KeyAndCert* identity = nullptr;  // Client certificate, if any.
  std::string server_name = "";          // Overrides the target's host.
};

class SecurityTest : public ::testing::Test {
 protected:
  SecurityTest()
      : dir_(chat::testing::MakeTempDir("groupsvc-security")),
        ca_("chat test CA"),
        other_ca_("unknown CA"),
        server_cert_(ca_.Issue({.common_name = "groupsvc",
                                .dns_names = {"localhost"},
                                .ip_addresses = {"127.0.0.1"},
                                .client_auth = false})) {}

  ~SecurityTest() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void SetUp() override {
    WriteFileAtomically(Path("server.crt"), server_cert_.cert_pem);
    WriteFileAtomically(Path("server.key"), server_cert_.key_pem);
    WriteFileAtomically(Path("client_ca.crt"), ca_.cert_pem());
    WriteFileAtomically(Path("tokens"), kTokens);
  }

  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }

  ServerOptions Secure() const {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";  // Tests that scrape set it (the exposer takes 2 s to stop).
    options.registry.warmup = absl::ZeroDuration();
    options.tls.cert_file = Path("server.crt");
    options.tls.key_file = Path("server.key");
    options.tls.client_ca_file = Path("client_ca.crt");
    options.tls.reload_interval = absl::Seconds(1);
    options.api.tokens_file = Path("tokens");
    options.api.tokens_check_interval = absl::Milliseconds(100);
    return options;
  }

  void Start(ServerOptions options) {
    auto server = GroupServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::shared_ptr<grpc::Channel> Channel(const ClientTls& tls = {}) const {
    std::vector<grpc::experimental::IdentityKeyCertPair> identity;
    if (tls.identity != nullptr)
      identity.push_back({tls.identity->key_pem, tls.identity->cert_pem});
    auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
        tls.root_pem.empty() ? ca_.cert_pem() : tls.root_pem, identity);
    grpc::experimental::TlsChannelCredentialsOptions options;
    options.set_certificate_provider(provider);
    options.watch_root_certs();
    if (tls.identity != nullptr) options.watch_identity_key_cert_pairs();
    options.set_certificate_verifier(
        std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
    grpc::ChannelArguments args;
    args.SetInt("chat.test.channel", channel_counter.fetch_add(1));
    if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::experimental::TlsCredentials(options), args);
  }

  // A unary call of `method` ("/groupsvc.v1.ChannelLayer/Stats") with `request`
  // and, unless empty, `authorization: <authorization>`.
  static grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                           const google::protobuf::Message& request,
                           const std::string& authorization,
                           google::protobuf::Message* response = nullptr) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    grpc::Slice slice(request.SerializeAsString());
    grpc::ByteBuffer request_buffer(&slice, 1);
    grpc::ByteBuffer response_buffer;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request_buffer, &response_buffer,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    if (status.ok() && response != nullptr) {
      std::vector<grpc::Slice> slices;
      EXPECT_TRUE(response_buffer.Dump(&slices).ok());
      std::string bytes;
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      EXPECT_TRUE(response->ParseFromString(bytes));
    }
    return status;
  }

  static std::string Bearer(const std::string& token) { return absl::StrCat("Bearer ", token); }

  static v1::GroupSendRequest ChatSend(const std::string& group, const std::string& message) {
    v1::GroupSendRequest request;
    request.set_group(group);
    auto& fields = *request.mutable_event()->mutable_fields();
    fields["type"].set_string_value("chat.message");
    fields["message"].set_string_value(message);
    return request;
  }

  // Polls `check` every 50 ms until it holds, for at most `timeout`.
  static bool Eventually(const std::function<bool()>& check,
                         absl::Duration timeout = absl::Seconds(8)) {
    const absl::Time deadline = absl::Now() + timeout;
    do {
      if (check()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < deadline);
    return false;
  }

  // The value of one sample line of groupsvc's /metrics, -1 if absent.
  double Metric(const std::string& sample) const {
    absl::StatusOr<chat::testing::HttpReply> r =
        HttpGet("127.0.0.1", server_->metrics_port(), "/metrics");
    if (!r.ok()) return -1;
    const size_t at = r->body.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r->body.substr(at + sample.size() + 2));
  }

  // An edge with a certificate for `names`, signed by `ca` (default: ours).
  KeyAndCert EdgeCert(std::vector<std::string> names, const TestCa* ca = nullptr,
                      absl::Duration valid_from = -absl::Hours(1),
                      absl::Duration valid_until = absl::Hours(24)) const {
    return (ca ? *ca : ca_)
        .Issue({.common_name = names.empty() ? "edge" : names.front(),
                .dns_names = names,
                .valid_from = valid_from,
                .valid_until = valid_until,
                .server_auth = false});
  }

  grpc::Status AttachAs(const std::string& edge_id, const KeyAndCert* cert) const {
    TestEdge edge(Channel({.identity = cert}), edge_id, absl::StrCat(edge_id, "!"));
    return edge.Hello();
  }

  const std::string dir_;
  TestCa ca_;
  TestCa other_ca_;
  const KeyAndCert server_cert_;
  std::unique_ptr<GroupServer> server_;
};

// ------------------------------------------------------------------ Tokens

TEST_F(SecurityTest, UnaryCallsWithoutAValidTokenAreUnauthenticated) {
  Start(Secure());
  auto channel = Channel();
  const v1::ListGroupsRequest list;
  for (const std::string& authorization :
       {std::string(), std::string("Bearer "), Bearer("not-a-token-0123456789"),
        absl::StrCat("Basic ", kAdmin), std::string(kAdmin),
        Bearer(std::string(kAdmin).substr(1))}) {
    grpc::Status s = Call(channel, "/groupsvc.v1.ChannelLayer/ListGroups", list, authorization);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "[" << authorization << "]";
  }
  grpc::Status s = Call(channel, "/groupsvc.v1.ChannelLayer/GroupSend", ChatSend("room", "x"), "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("authorization: Bearer"));
  // Checked before the request is parsed: garbage without a token is refused
  // for the token, not for the garbage.
  grpc::GenericStub stub(channel);
  EXPECT_EQ(Call(channel, "/groupsvc.v1.ChannelLayer/Flush", v1::FlushRequest(), "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The scheme is case-insensitive, as HTTP's.
  EXPECT_TRUE(
      Call(channel, "/groupsvc.v1.ChannelLayer/ListGroups", list, absl::StrCat("bearer ", kReader))
          .ok());
}

TEST_F(SecurityTest, EachMethodNeedsItsScope) {
  Start(Secure());
  auto channel = Channel();
  struct Case {
    std::string method;
    const google::protobuf::Message* request;
    std::string scope;
  };
  const v1::ListGroupsRequest list;
  v1::GetGroupRequest get;
  get.set_name("room");
  const v1::StatsRequest stats;
  v1::SendRequest send;
  send.set_channel("backend.one!x");
  (*send.mutable_event()->mutable_fields())["type"].set_string_value("chat.message");
  const v1::GroupSendRequest group_send = ChatSend("room", "hi");
  v1::GroupAddRequest add;
  add.set_group("room");
  add.set_channel("backend.one!x");
  v1::GroupDiscardRequest discard;
  discard.set_group("room");
  discard.set_channel("backend.one!x");
  const v1::FlushRequest flush;
  v1::ReceiveRequest receive;
  receive.set_channel("backend.one!x");
  const v1::NewChannelRequest new_channel;
  v1::DisconnectRequest disconnect;
  disconnect.set_user_id("u1");
  v1::RemoveFromGroupRequest remove;
  remove.set_user_id("u1");
  remove.set_group("room");
  v1::GetUserRequest get_user;
  get_user.set_user_id("u1");
  const std::vector<Case> cases = {
      {"ListGroups", &list, "read"},
      {"GetGroup", &get, "read"},
      {"Stats", &stats, "read"},
      {"Send", &send, "send"},
      {"GroupSend", &group_send, "send"},
      {"GroupAdd", &add, "admin"},
      {"GroupDiscard", &discard, "admin"},
      {"Flush", &flush, "admin"},
      {"Receive", &receive, "admin"},
      {"NewChannel", &new_channel, "admin"},
      {"Disconnect", &disconnect, "admin"},
      {"RemoveFromGroup", &remove, "admin"},
      {"GetUser", &get_user, "admin"},
  };
  for (const Case& c : cases) {
    const std::string method = absl::StrCat("/groupsvc.v1.ChannelLayer/", c.method);
    for (const auto& [name, token] : {std::pair{"read", kReader}, std::pair{"send", kSender}}) {
      grpc::Status s = Call(channel, method, *c.request, Bearer(token));
      if (c.scope == name) {
        // Past the guard: OK, or the method's own answer (GetGroup of an empty group).
        EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << c.method;
        EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << c.method;
      } else {
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << c.method << " with " << name;
        EXPECT_THAT(s.error_message(), HasSubstr(absl::StrCat("needs \"", c.scope, "\"")));
      }
    }
    grpc::Status s = Call(channel, method, *c.request, Bearer(kAdmin));
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND)
        << c.method << ": " << s.error_message();
  }
}

TEST_F(SecurityTest, HealthAndReflectionNeedNoToken) {
  Start(Secure());
  auto channel = Channel();
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, grpc::health::v1::HealthCheckRequest(), &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Reflection's list_services (field 7, an empty string), as grpcurl's `list` sends it.
  grpc::GenericStub stub(channel);
  grpc::ClientContext reflection;
  reflection.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &reflection, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1);
  call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer answer;
  call->Read(&answer, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_TRUE(ok) << "no reflection answer without a token";
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(answer.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_THAT(bytes, HasSubstr("groupsvc.v1.ChannelLayer"));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(SecurityTest, ARevokedTokenIsRefusedWithoutARestart) {
  Start(Secure());
  auto channel = Channel();
  const v1::GroupSendRequest send = ChatSend("room", "hi");
  const std::string method = "/groupsvc.v1.ChannelLayer/GroupSend";
  ASSERT_TRUE(Call(channel, method, send, Bearer(kSender)).ok());
  // The sender's line goes; a new one comes; the file is replaced whole, as a
  // Secret update does.
  WriteFileAtomically(Path("tokens"),
                      "reader read reader-token-0123456789\n"
                      "admin read,send,admin admin-token-0123456789ab\n"
                      "late send late-token-012345678901\n");
  EXPECT_TRUE(Eventually([&] {
    return Call(channel, method, send, Bearer(kSender)).error_code() ==
           grpc::StatusCode::UNAUTHENTICATED;
  })) << "the revoked token still works";
  EXPECT_TRUE(Call(channel, method, send, Bearer("late-token-012345678901")).ok());
  EXPECT_TRUE(Call(channel, method, send, Bearer(kAdmin)).ok());

  // A broken file keeps the tokens that were good.
  WriteFileAtomically(Path("tokens"), "admin read,root admin-token-0123456789ab\n");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE(Call(channel, method, send, Bearer("late-token-012345678901")).ok());
  // And the edit is done in place, too (same inode, new size and mtime).
  {
    std::ofstream out(Path("tokens"), std::ios::trunc);
    out << "reader read reader-token-0123456789\n";
  }
  EXPECT_TRUE(Eventually([&] {
    return Call(channel, method, send, Bearer(kAdmin)).error_code() ==
           grpc::StatusCode::UNAUTHENTICATED;
  }));
}

TEST_F(SecurityTest, RefusalsAreCountedByResultAndToken) {
  ServerOptions options = Secure();
  options.metrics_listen = "127.0.0.1:0";
  Start(options);
  auto channel = Channel();
  const v1::StatsRequest stats;
  const std::string method = "/groupsvc.v1.ChannelLayer/Stats";
  ASSERT_TRUE(Call(channel, method, stats, Bearer(kReader)).ok());
  ASSERT_EQ(Call(channel, method, stats, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_EQ(Call(channel, method, stats, Bearer("wrong-token-0123456789")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_EQ(Call(channel, method, stats, Bearer(kSender)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Metric(R"(groupsvc_api_calls_total{result="ok",token="reader"})"), 1);
  EXPECT_EQ(Metric(R"(groupsvc_api_calls_total{result="unauthenticated",token=""})"), 2);
  EXPECT_EQ(Metric(R"(groupsvc_api_calls_total{result="permission_denied",token="sender"})"), 1);
  ASSERT_EQ(AttachAs("edge-a", nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Metric(R"(groupsvc_attach_refused_total{reason="no_certificate"})"), 1);
}

TEST_F(SecurityTest, EachTokenHasItsOwnRateLimit) {
  ServerOptions options = Secure();
  options.api.rate = 0.2;
  options.api.burst = 3;
  options.metrics_listen = "127.0.0.1:0";
  Start(options);
  auto channel = Channel();
  const v1::StatsRequest stats;
  const std::string method = "/groupsvc.v1.ChannelLayer/Stats";
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Call(channel, method, stats, Bearer(kReader)).ok()) << i;
  grpc::Status s = Call(channel, method, stats, Bearer(kReader));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("token:reader"));
  // Another caller is not slowed by this one.
  EXPECT_TRUE(Call(channel, method, stats, Bearer(kAdmin)).ok());
  EXPECT_EQ(Metric(R"(groupsvc_api_calls_total{result="rate_limited",token="reader"})"), 1);
}

TEST_F(SecurityTest, OneCallerCannotFillTheLayer) {
  ServerOptions options = Secure();
  options.api.caller_queued_bytes = 1000;
  Start(options);
  auto channel = Channel();
  v1::SendRequest send;
  send.set_channel("backend.one!x");
  auto& fields = *send.mutable_event()->mutable_fields();
  fields["type"].set_string_value("chat.message");
  fields["message"].set_string_value(std::string(250, 'x'));  // ~300 bytes a copy
  const std::string method = "/groupsvc.v1.ChannelLayer/Send";
  int sent = 0;
  grpc::Status s;
  while ((s = Call(channel, method, send, Bearer(kSender))).ok() && sent < 10) ++sent;
  EXPECT_EQ(sent, 3);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("caller quota: token:sender"));
  // Another caller still has its own room.
  EXPECT_TRUE(Call(channel, method, send, Bearer(kAdmin)).ok());
  // A delivered event frees the sender's share.
  v1::ReceiveRequest receive;
  receive.set_channel("backend.one!x");
  v1::ReceiveResponse received;
  ASSERT_TRUE(
      Call(channel, "/groupsvc.v1.ChannelLayer/Receive", receive, Bearer(kAdmin), &received).ok());
  ASSERT_TRUE(received.has_event());
  EXPECT_TRUE(Call(channel, method, send, Bearer(kSender)).ok());
  EXPECT_EQ(Call(channel, method, send, Bearer(kSender)).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(SecurityTest, TokensAreEnforcedOnAPlaintextPortToo) {
  ServerOptions options = Secure();
  options.tls = TlsOptions();
  Start(options);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Call(channel, "/groupsvc.v1.ChannelLayer/Stats", v1::StatsRequest(), "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(
      Call(channel, "/groupsvc.v1.ChannelLayer/Stats", v1::StatsRequest(), Bearer(kReader)).ok());
}

TEST_F(SecurityTest, WithoutATokensFileTheApiIsOpen) {
  ServerOptions options = Secure();
  options.api = ApiOptions();
  Start(options);
  EXPECT_TRUE(Call(Channel(), "/groupsvc.v1.ChannelLayer/Flush", v1::FlushRequest(), "").ok());
}

// --------------------------------------------------------------- Mutual TLS

TEST_F(SecurityTest, AnEdgeWithItsCertificateAttachesAndIsDelivered) {
  Start(Secure());
  const KeyAndCert cert = EdgeCert({"edge-a"});
  TestEdge edge(Channel({.identity = &cert}), "edge-a", "edge-a!");
  ASSERT_TRUE(edge.Hello().ok());
  ASSERT_TRUE(edge.GroupAdd(1, "room", "edge-a!c1"));
  ASSERT_TRUE(edge.NextAck().has_value());
  v1::GroupSendResponse sent;
  ASSERT_TRUE(Call(Channel(), "/groupsvc.v1.ChannelLayer/GroupSend", ChatSend("room", "hi"),
                   Bearer(kSender), &sent)
                  .ok());
  EXPECT_EQ(sent.delivered(), 1u);
  std::optional<v1::Delivery> delivery = edge.NextDelivery();
  ASSERT_TRUE(delivery.has_value());
  EXPECT_THAT(delivery->event().json(), HasSubstr("\"hi\""));
}

TEST_F(SecurityTest, AttachWithoutACertificateIsUnauthenticated) {
  Start(Secure());
  grpc::Status s = AttachAs("edge-a", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("client certificate"));
}

TEST_F(SecurityTest, ACertificateFromAnUnknownCaFailsTheHandshake) {
  Start(Secure());
  const KeyAndCert cert = EdgeCert({"edge-a"}, &other_ca_);
  grpc::Status s = AttachAs("edge-a", &cert);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // The connection itself is refused, so not even a token helps on it.
  EXPECT_EQ(Call(Channel({.identity = &cert}), "/groupsvc.v1.ChannelLayer/Stats",
                 v1::StatsRequest(), Bearer(kReader))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server_->registry().Stats().attached_edges, 0u);
}

TEST_F(SecurityTest, AnExpiredCertificateFailsTheHandshake) {
  Start(Secure());
  const KeyAndCert cert = EdgeCert({"edge-a"}, nullptr, -absl::Hours(48), -absl::Hours(24));
  grpc::Status s = AttachAs("edge-a", &cert);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(server_->registry().Stats().attached_edges, 0u);
}

TEST_F(SecurityTest, ACertificateForAnotherEdgeIsPermissionDenied) {
  ServerOptions options = Secure();
  options.metrics_listen = "127.0.0.1:0";
  Start(options);
  const KeyAndCert a = EdgeCert({"edge-a"});
  const KeyAndCert b = EdgeCert({"edge-b", "edge-b.chat"});
  TestEdge edge_a(Channel({.identity = &a}), "edge-a", "edge-a!");
  ASSERT_TRUE(edge_a.Hello().ok());
  ASSERT_TRUE(edge_a.GroupAdd(1, "room", "edge-a!c1"));
  ASSERT_TRUE(edge_a.NextAck().has_value());
  // edge-b's certificate cannot take edge-a's id, nor any id it does not carry.
  for (const std::string id : {"edge-a", "edge-c", "edge-b.chat.x", "EDGE-B"}) {
    grpc::Status s = AttachAs(id, &b);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << id;
    EXPECT_THAT(s.error_message(), HasSubstr("edge-b,edge-b.chat"));
  }
  EXPECT_TRUE(AttachAs("edge-b.chat", &b).ok());
  // edge-a kept its members and its stream.
  v1::GroupSendResponse sent;
  ASSERT_TRUE(Call(Channel(), "/groupsvc.v1.ChannelLayer/GroupSend", ChatSend("room", "still"),
                   Bearer(kSender), &sent)
                  .ok());
  EXPECT_EQ(sent.delivered(), 1u);
  EXPECT_TRUE(edge_a.NextDelivery().has_value());
  EXPECT_EQ(Metric(R"(groupsvc_attach_refused_total{reason="identity"})"), 4);
}

TEST_F(SecurityTest, AWildcardCertificateAdmitsOneLabel) {
  Start(Secure());
  const KeyAndCert cert = EdgeCert({"*.edge.test"});
  EXPECT_TRUE(AttachAs("pod-1.edge.test", &cert).ok());
  for (const std::string id :
       {"edge.test", "a.pod-1.edge.test", ".edge.test", "pod-1.edge.testx"}) {
    EXPECT_EQ(AttachAs(id, &cert).error_code(), grpc::StatusCode::PERMISSION_DENIED) << id;
  }
}

TEST_F(SecurityTest, AClientCertificateIsNoApiToken) {
  Start(Secure());
  const KeyAndCert cert = EdgeCert({"edge-a"});
  EXPECT_EQ(
      Call(Channel({.identity = &cert}), "/groupsvc.v1.ChannelLayer/Flush", v1::FlushRequest(), "")
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SecurityTest, WithoutAClientCaAnyTlsClientAttaches) {
  ServerOptions options = Secure();
  options.tls.client_ca_file.clear();
  Start(options);
  EXPECT_TRUE(AttachAs("edge-a", nullptr).ok());
}

TEST_F(SecurityTest, TheServerCertificateIsVerified) {
  Start(Secure());
  const v1::StatsRequest stats;
  const std::string method = "/groupsvc.v1.ChannelLayer/Stats";
  EXPECT_TRUE(Call(Channel({.server_name = "localhost"}), method, stats, Bearer(kReader)).ok());
  EXPECT_EQ(Call(Channel({.root_pem = other_ca_.cert_pem()}), method, stats, Bearer(kReader))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(Channel({.server_name = "groupsvc.example"}), method, stats, Bearer(kReader))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  auto plaintext = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
  EXPECT_EQ(Call(plaintext, method, stats, Bearer(kReader)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

// ----------------------------------------------------------------- Rotation

TEST_F(SecurityTest, ARenewedServerCertificateIsServedWithoutARestart) {
  Start(Secure());
  TestCa renewed_ca("renewed CA");
  const v1::StatsRequest stats;
  const std::string method = "/groupsvc.v1.ChannelLayer/Stats";
  auto trusts_new = [&] {
    return Call(Channel({.root_pem = renewed_ca.cert_pem()}), method, stats, Bearer(kReader));
  };
  ASSERT_EQ(trusts_new().error_code(), grpc::StatusCode::UNAVAILABLE);
  const KeyAndCert renewed = renewed_ca.Issue(
      {.common_name = "groupsvc", .dns_names = {"localhost"}, .ip_addresses = {"127.0.0.1"}});
  WriteFileAtomically(Path("server.key"), renewed.key_pem);
  WriteFileAtomically(Path("server.crt"), renewed.cert_pem);
  EXPECT_TRUE(Eventually([&] { return trusts_new().ok(); }))
      << "new handshakes still present the old certificate";
  EXPECT_EQ(Call(Channel(), method, stats, Bearer(kReader)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, ARenewedClientCaIsUsedWithoutARestart) {
  Start(Secure());
  TestCa next_ca("next CA");
  const KeyAndCert cert = EdgeCert({"edge-a"}, &next_ca);
  ASSERT_EQ(AttachAs("edge-a", &cert).error_code(), grpc::StatusCode::UNAVAILABLE);
  // A bundle of the old and the new CA, as during a CA rollover.
  WriteFileAtomically(Path("client_ca.crt"), ca_.cert_pem() + next_ca.cert_pem());
  EXPECT_TRUE(Eventually([&] { return AttachAs("edge-a", &cert).ok(); }));
  const KeyAndCert old_cert = EdgeCert({"edge-b"});
  EXPECT_TRUE(AttachAs("edge-b", &old_cert).ok());
}

// ------------------------------------------------------------------ Startup

TEST_F(SecurityTest, StartRefusesWhatCannotWork) {
  auto start_error = [&](const ServerOptions& options) {
    auto server = GroupServer::Start(options);
    return server.ok() ? std::string("started") : std::string(server.status().message());
  };
  ServerOptions options = Secure();
  WriteFileAtomically(Path("bad_tokens"),
                      "reader read reader-token-0123456789\nx sudo 0123456789abcdef0\n");
  options.api.tokens_file = Path("bad_tokens");
  EXPECT_THAT(start_error(options), HasSubstr("line 2: unknown scope \"sudo\""));
  options.api.tokens_file = Path("missing");
  EXPECT_THAT(start_error(options), HasSubstr("cannot read"));

  options = Secure();
  const KeyAndCert other = ca_.Issue({.common_name = "other"});
  WriteFileAtomically(Path("other.key"), other.key_pem);
  options.tls.key_file = Path("other.key");
  EXPECT_THAT(start_error(options), HasSubstr("is not the private key of the certificate"));
  options.tls.key_file = "";
  EXPECT_THAT(start_error(options), HasSubstr("go together"));

  options = Secure();
  options.tls.cert_file = options.tls.key_file = "";
  EXPECT_THAT(start_error(options), HasSubstr("--tls_client_ca needs --tls_cert"));
  options = Secure();
  options.tls.client_ca_file = Path("tokens");
  EXPECT_THAT(start_error(options), HasSubstr("no PEM certificate"));
}

}  // namespace
}  // namespace groupsvc
