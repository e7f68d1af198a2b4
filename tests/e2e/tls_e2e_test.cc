// End-to-end security tests (issue 12): the real groupsvc and edge binaries
// with TLS, mutual TLS and API tokens, certificates made at test time
// (tests/support/test_certs), real WebSockets, and the grpcurl-like client
// over TLS with a bearer token.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "shared/placement.h"
#include "tests/support/child_process.h"
#include "tests/support/http_get.h"
#include "tests/support/ports.h"
#include "tests/support/reflection_client.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_edge.h"
#include "tests/support/ws_client.h"

namespace chat::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

constexpr char kOperator[] = "operator-token-0123456789abcdef";
constexpr char kReader[] = "reader-token-0123456789abcdef";

// TLS handshakes and certificate reloads make these edges slower to be ready.
constexpr absl::Duration kReadyWithin = absl::Seconds(15);

std::string Chat(const std::string& m) { return absl::StrCat(R"({"message":")", m, R"("})"); }

class TlsSystemTest : public ::testing::Test {
 protected:
  TlsSystemTest() : dir_(MakeTempDir("chat-tls-e2e")), ca_("chat test CA"), other_ca_("other CA") {}
  ~TlsSystemTest() override {
    edges_.clear();
    groupsvc_.reset();
    std::filesystem::remove_all(dir_);
  }

  void SetUp() override {
    const KeyAndCert server = ca_.Issue({.common_name = "groupsvc",
                                         .dns_names = {"localhost"},
                                         .ip_addresses = {"127.0.0.1"},
                                         .client_auth = false});
    WriteFileAtomically(Path("groupsvc.crt"), server.cert_pem);
    WriteFileAtomically(Path("groupsvc.key"), server.key_pem);
    WriteFileAtomically(Path("ca.crt"), ca_.cert_pem());
    WriteFileAtomically(Path("tokens"), absl::StrCat("operator read,send,admin ", kOperator,
                                                     "\nreader read ", kReader, "\n"));
  }

  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }

  // groupsvc with TLS, mutual TLS for Attach and tokens; `client_ca` is the
  // file of CAs it accepts edge certificates from.
  void StartGroupsvc(const std::string& client_ca, int port = 0) {
    auto p = ChildProcess::Start({GROUPSVC_BIN, absl::StrCat("--listen=127.0.0.1:", port),
                                  "--metrics_listen=", "--health_listen=127.0.0.1:0", "--warmup=0s",
                                  "--grace=1s", absl::StrCat("--tls_cert=", Path("groupsvc.crt")),
                                  absl::StrCat("--tls_key=", Path("groupsvc.key")),
                                  absl::StrCat("--tls_client_ca=", client_ca),
                                  absl::StrCat("--api_tokens_file=", Path("tokens"))});
    ASSERT_TRUE(p.ok()) << p.status();
    groupsvc_ = *std::move(p);
    absl::StatusOr<int> got = groupsvc_->WaitForField(" listening ", "port", absl::Seconds(20));
    ASSERT_TRUE(got.ok()) << got.status() << groupsvc_->Output();
    groupsvc_port_ = *got;
    absl::StatusOr<int> health =
        groupsvc_->WaitForField(" listening ", "health_port", absl::Seconds(1));
    ASSERT_TRUE(health.ok()) << health.status();
    health_port_ = *health;
  }

  // Writes an edge certificate for `names` as NAME.crt / NAME.key.
  void WriteEdgeCert(const std::string& file, std::vector<std::string> names,
                     const TestCa* ca = nullptr, absl::Duration valid_until = absl::Hours(24)) {
    const KeyAndCert cert =
        (ca ? *ca : ca_)
            .Issue({.common_name = names.empty() ? "edge" : names.front(),
                    .dns_names = std::move(names),
                    .valid_from =
                        valid_until < absl::ZeroDuration() ? 2 * valid_until : -absl::Hours(1),
                    .valid_until = valid_until,
                    .server_auth = false});
    WriteFileAtomically(Path(file + ".key"), cert.key_pem);
    WriteFileAtomically(Path(file + ".crt"), cert.cert_pem);
  }

  // An edge linked to groupsvc over TLS, with the client certificate in
  // `cert_file`.{crt,key} (none if empty); returns its HTTP port.
  // `groupsvc`: the shards' list; empty: groupsvc_port_.
  int StartEdge(const std::string& edge_id, const std::string& cert_file,
                const std::string& groupsvc = "") {
    std::vector<std::string> argv = {
        EDGE_BIN,
        "--listen=127.0.0.1:0",
        "--metrics_listen=",
        absl::StrCat("--groupsvc=",
                     groupsvc.empty() ? absl::StrCat("127.0.0.1:", groupsvc_port_) : groupsvc),
        absl::StrCat("--edge_id=", edge_id),
        absl::StrCat("--groupsvc_tls_ca=", Path("ca.crt")),
        "--groupsvc_tls_reload_interval=1s",
        "--grace=1s"};
    if (!cert_file.empty()) {
      argv.push_back(absl::StrCat("--groupsvc_tls_cert=", Path(cert_file + ".crt")));
      argv.push_back(absl::StrCat("--groupsvc_tls_key=", Path(cert_file + ".key")));
    }
    auto p = ChildProcess::Start(argv);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return 0;
    absl::StatusOr<int> port = (*p)->WaitForField(" listening ", "port", absl::Seconds(20));
    EXPECT_TRUE(port.ok()) << port.status() << (*p)->Output();
    edges_.push_back(*std::move(p));
    return port.value_or(0);
  }
  ChildProcess& edge(size_t i) { return *edges_.at(i); }

  std::shared_ptr<grpc::ChannelCredentials> Tls() const {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca_.cert_pem();
    return grpc::SslCredentials(ssl);
  }
  // What `grpcurl -cacert ca.crt -H 'authorization: Bearer TOKEN' 127.0.0.1:PORT` uses.
  std::shared_ptr<grpc::Channel> GrpcurlChannel(const std::string& token = "") const {
    auto credentials = Tls();
    if (!token.empty()) {
      credentials =
          grpc::CompositeChannelCredentials(credentials, grpc::AccessTokenCredentials(token));
    }
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", groupsvc_port_), credentials);
  }

  const std::string dir_;
  TestCa ca_;
  TestCa other_ca_;
  std::unique_ptr<ChildProcess> groupsvc_;
  std::vector<std::unique_ptr<ChildProcess>> edges_;
  int groupsvc_port_ = 0;
  int health_port_ = 0;
};

TEST_F(TlsSystemTest, TwoEdgesChatOverMutualTlsAndGrpcurlNeedsAToken) {
  StartGroupsvc(Path("ca.crt"));
  WriteEdgeCert("edge-a", {"edge-a"});
  WriteEdgeCert("edge-b", {"edge-b"});
  const int port_a = StartEdge("edge-a", "edge-a");
  const int port_b = StartEdge("edge-b", "edge-b");
  ASSERT_TRUE(WaitReady(port_a, true, kReadyWithin) && WaitReady(port_b, true, kReadyWithin))
      << groupsvc_->Output() << edge(0).Output() << edge(1).Output();
  auto alice = WsClient::Connect(port_a, "/ws/chat/lobby/");
  auto bob = WsClient::Connect(port_b, "/ws/chat/lobby/");
  ASSERT_TRUE(alice.ok() && bob.ok());
  ASSERT_TRUE((*alice)->SendText(Chat("hello over mTLS")));
  EXPECT_EQ((*bob)->Read().value_or(""), Chat("hello over mTLS"));
  EXPECT_EQ((*alice)->Read().value_or(""), Chat("hello over mTLS"));

  const std::string log = groupsvc_->Output();
  EXPECT_THAT(log, HasSubstr(" security tls=on "));
  EXPECT_THAT(log, HasSubstr("attach=client_certificate api=tokens tokens=2"));
  EXPECT_THAT(log, Not(HasSubstr("security_warning")));
  EXPECT_THAT(log, HasSubstr("edge_attached edge=edge-a"));
  EXPECT_THAT(edge(0).Output(), HasSubstr(" layer_tls "));
  EXPECT_THAT(edge(0).Output(), Not(HasSubstr("security_warning")));

  // The grpcurl path over TLS: reflection and health need no token...
  ReflectionClient anonymous(GrpcurlChannel());
  absl::StatusOr<std::vector<std::string>> services = anonymous.ListServices();
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, IsSupersetOf({"groupsvc.v1.ChannelLayer", "grpc.health.v1.Health"}));
  absl::StatusOr<std::string> health = anonymous.CallJson("grpc.health.v1.Health/Check", "{}");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_THAT(*health, HasSubstr("SERVING"));
  // ...the API does.
  absl::StatusOr<std::string> refused =
      anonymous.CallJson("groupsvc.v1.ChannelLayer/ListGroups", R"({"namePrefix": "chat_"})");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  ReflectionClient reader(GrpcurlChannel(kReader));
  absl::StatusOr<std::string> groups =
      reader.CallJson("groupsvc.v1.ChannelLayer/ListGroups", R"({"namePrefix": "chat_"})");
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_THAT(*groups, HasSubstr(R"("name":"chat_lobby","size":2)"));
  const std::string send =
      R"({"group": "chat_lobby", "event": {"type": "chat.message", "message": "from grpcurl"}})";
  EXPECT_EQ(reader.CallJson("groupsvc.v1.ChannelLayer/GroupSend", send).status().code(),
            absl::StatusCode::kPermissionDenied);
  ReflectionClient op(GrpcurlChannel(kOperator));
  absl::StatusOr<std::string> sent = op.CallJson("groupsvc.v1.ChannelLayer/GroupSend", send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_THAT(*sent, HasSubstr(R"("delivered":2)"));
  EXPECT_EQ((*bob)->Read().value_or(""), Chat("from grpcurl"));

  // The plaintext health port, for kubelet's gRPC probes, serves health only.
  auto plain = grpc::CreateChannel(absl::StrCat("127.0.0.1:", health_port_),
                                   grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(grpc::health::v1::Health::NewStub(plain)
                  ->Check(&context, grpc::health::v1::HealthCheckRequest(), &response)
                  .ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  ReflectionClient on_health_port(plain);
  EXPECT_EQ(on_health_port.CallJson("groupsvc.v1.ChannelLayer/Stats", "{}").status().code(),
            absl::StatusCode::kUnimplemented);
  // Nor the Attach stream: no edge gets past TLS through the probes' port.
  chat::testing::TestEdge sneaky(plain, "edge-x", "edge-x!");
  const grpc::Status attach = sneaky.Hello();
  EXPECT_EQ(attach.error_code(), grpc::StatusCode::UNIMPLEMENTED) << attach.error_message();
}

// Two shards over TLS with tokens: the edge attaches to both with its client
// certificate, and a call to the shard that does not own the room is
// forwarded over TLS with the caller's token, which the owner checks again.
TEST_F(TlsSystemTest, ShardsForwardOverTlsWithTheCallersToken) {
  const int ports[2] = {FreeLoopbackPort(), FreeLoopbackPort()};
  const std::string list = absl::StrCat("127.0.0.1:", ports[0], ",127.0.0.1:", ports[1]);
  std::vector<std::unique_ptr<ChildProcess>> shards;
  for (int i = 0; i < 2; ++i) {
    auto p =
        ChildProcess::Start({GROUPSVC_BIN, absl::StrCat("--listen=127.0.0.1:", ports[i]),
                             "--metrics_listen=", "--warmup=0s", "--grace=1s",
                             absl::StrCat("--tls_cert=", Path("groupsvc.crt")),
                             absl::StrCat("--tls_key=", Path("groupsvc.key")),
                             absl::StrCat("--tls_client_ca=", Path("ca.crt")),
                             absl::StrCat("--api_tokens_file=", Path("tokens")),
                             absl::StrCat("--shards=", list), absl::StrCat("--shard_index=", i)});
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE((*p)->WaitForLine(" listening ", absl::Seconds(20)).ok()) << (*p)->Output();
    shards.push_back(*std::move(p));
  }
  WriteEdgeCert("edge-a", {"edge-a"});
  const int port = StartEdge("edge-a", "edge-a", list);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        edge(0)
            .WaitForLine(absl::StrCat("layer_up target=127.0.0.1:", ports[i]), absl::Seconds(15))
            .ok())
        << edge(0).Output();
  }
  std::string room;
  for (int i = 0; room.empty(); ++i) {
    if (chat::GroupShard(absl::StrCat("chat_r", i), 2) == 1) room = absl::StrCat("r", i);
  }
  auto alice = WsClient::Connect(port, absl::StrCat("/ws/chat/", room, "/"));
  ASSERT_TRUE(alice.ok());
  absl::SleepFor(absl::Milliseconds(200));  // Her group_add reaches shard 1.

  groupsvc_port_ = ports[0];  // grpcurl against the shard that does not own the room.
  const std::string get = absl::StrCat(R"({"name": "chat_)", room, R"("})");
  EXPECT_EQ(ReflectionClient(GrpcurlChannel())
                .CallJson("groupsvc.v1.ChannelLayer/GetGroup", get)
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  absl::StatusOr<std::string> group =
      ReflectionClient(GrpcurlChannel(kReader)).CallJson("groupsvc.v1.ChannelLayer/GetGroup", get);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_THAT(*group, HasSubstr(R"("edgeId":"edge-a")"));
  const std::string send = absl::StrCat(R"({"group": "chat_)", room,
                                        R"(", "event": {"type": "chat.message", "message": "x"}})");
  absl::StatusOr<std::string> sent = ReflectionClient(GrpcurlChannel(kOperator))
                                         .CallJson("groupsvc.v1.ChannelLayer/GroupSend", send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_THAT(*sent, HasSubstr(R"("delivered":1)"));
  EXPECT_EQ((*alice)->Read().value_or(""), Chat("x"));
  EXPECT_THAT(shards[0]->Output(), Not(HasSubstr("security_warning")));
}

TEST_F(TlsSystemTest, EdgesWithoutTheRightCertificateStayUnready) {
  StartGroupsvc(Path("ca.crt"));
  WriteEdgeCert("edge-a", {"edge-a"});
  WriteEdgeCert("expired", {"edge-e"}, nullptr, -absl::Hours(1));
  WriteEdgeCert("foreign", {"edge-f"}, &other_ca_);
  const int impostor = StartEdge("edge-x", "edge-a");  // edge-a's certificate, another id
  const int bare = StartEdge("edge-n", "");            // TLS, no client certificate
  const int expired = StartEdge("edge-e", "expired");
  const int foreign = StartEdge("edge-f", "foreign");
  ASSERT_TRUE(edge(0).WaitForLine(" layer_refused ", absl::Seconds(10)).ok());
  EXPECT_THAT(*edge(0).WaitForLine(" layer_refused ", absl::Seconds(1)),
              HasSubstr("code=7"));  // PERMISSION_DENIED
  EXPECT_THAT(*edge(1).WaitForLine(" layer_refused ", absl::Seconds(10)),
              HasSubstr("code=16"));  // UNAUTHENTICATED
  // A handshake the server refuses (expired, unknown CA): no call is made; the
  // edge says its connection attempts fail.
  EXPECT_TRUE(edge(2).WaitForLine(" layer_connect_failing ", absl::Seconds(10)).ok());
  EXPECT_TRUE(edge(3).WaitForLine(" layer_connect_failing ", absl::Seconds(10)).ok());
  for (int port : {impostor, bare, expired, foreign}) {
    absl::StatusOr<HttpReply> r = HttpGet("127.0.0.1", port, "/readyz");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 503) << port;
  }
  const std::string log = groupsvc_->Output();
  EXPECT_THAT(log, HasSubstr("stream_refused peer="));
  EXPECT_THAT(log, HasSubstr("edge=edge-x reason=identity certificate_names=edge-a"));
  EXPECT_THAT(log, HasSubstr("reason=no_certificate"));
  EXPECT_THAT(log, Not(HasSubstr("edge_attached")));
}

TEST_F(TlsSystemTest, ARenewedEdgeCertificateIsUsedWithoutARestart) {
  StartGroupsvc(Path("ca.crt"));
  WriteEdgeCert("edge-a", {"edge-a"});
  const int port = StartEdge("edge-a", "edge-a");
  ASSERT_TRUE(WaitReady(port, true, kReadyWithin));
  // The edge's files now hold a certificate from a new CA, with a new key.
  TestCa next_ca("next CA");
  WriteFileAtomically(Path("next_ca.crt"), next_ca.cert_pem());
  WriteEdgeCert("edge-a", {"edge-a"}, &next_ca);
  // A groupsvc that trusts only the new CA: the edge reaches it only with the
  // renewed certificate, read from the files without a restart.
  groupsvc_->Signal(SIGTERM);
  ASSERT_EQ(groupsvc_->WaitExit(absl::Seconds(10)), 0);
  const int same_port = groupsvc_port_;
  StartGroupsvc(Path("next_ca.crt"), same_port);
  ASSERT_TRUE(WaitReady(port, true, absl::Seconds(20))) << edge(0).Output() << groupsvc_->Output();
  EXPECT_TRUE(groupsvc_->WaitForLine("edge_attached edge=edge-a", absl::Seconds(1)).ok());
  EXPECT_THAT(edge(0).Output(), Not(HasSubstr("draining signal")));
}

TEST_F(TlsSystemTest, PlaintextIsLoudInTheLog) {
  auto g = ChildProcess::Start({GROUPSVC_BIN, "--listen=127.0.0.1:0", "--metrics_listen="});
  ASSERT_TRUE(g.ok());
  absl::StatusOr<int> port = (*g)->WaitForField(" listening ", "port", absl::Seconds(20));
  ASSERT_TRUE(port.ok());
  const std::string log = (*g)->Output();
  EXPECT_THAT(log, HasSubstr(" security tls=off "));
  EXPECT_THAT(log, HasSubstr("security_warning issue=plaintext"));
  EXPECT_THAT(log, HasSubstr("security_warning issue=api_open"));
  groupsvc_port_ = *port;
  auto e = ChildProcess::Start({EDGE_BIN, "--listen=127.0.0.1:0",
                                "--metrics_listen=", absl::StrCat("--groupsvc=127.0.0.1:", *port)});
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE((*e)->WaitForLine("security_warning issue=plaintext", absl::Seconds(10)).ok());
  // An edge given half of its TLS settings does not start.
  auto half =
      ChildProcess::Start({EDGE_BIN, "--listen=127.0.0.1:0",
                           "--metrics_listen=", absl::StrCat("--groupsvc=127.0.0.1:", *port),
                           absl::StrCat("--groupsvc_tls_cert=", Path("ca.crt"))});
  ASSERT_TRUE(half.ok());
  EXPECT_EQ((*half)->WaitExit(absl::Seconds(10)), 1);
  EXPECT_THAT((*half)->Output(), HasSubstr("go together"));
}

}  // namespace
}  // namespace chat::testing
