// JwksUrl: the identity provider's JWKS over real HTTPS from a server on a
// loopback port (its certificate made at test time): the first fetch, a
// rotation found through an unknown kid, an outage that keeps the keys and
// backs off, a certificate from another CA, and a URL that is not https.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "edge/auth/key_source.h"
#include "edge/auth/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared/clock.h"
#include "tests/support/jwt_keys.h"
#include "tests/support/test_certs.h"

namespace edge {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using chat::testing::Jwks;
using chat::testing::TestKey;
using ::testing::HasSubstr;

// An identity provider's JWKS endpoint: HTTPS on 127.0.0.1, one request per
// connection, answering what the test sets.
class JwksServer {
 public:
  explicit JwksServer(const chat::testing::KeyAndCert& cert) {
    tls_.use_certificate_chain(net::buffer(cert.cert_pem));
    tls_.use_private_key(net::buffer(cert.key_pem), ssl::context::pem);
    acceptor_.open(net::ip::tcp::v4());
    acceptor_.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~JwksServer() {
    io_.stop();
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  void Set(http::status status, std::string body) {
    absl::MutexLock lock(&mu_);
    status_ = status;
    body_ = std::move(body);
  }
  int requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, net::ip::tcp::socket socket) {
      if (!ec) Serve(std::move(socket));
      Accept();
    });
  }
  // Blocking, on the server's thread: fine for a test's few requests.
  void Serve(net::ip::tcp::socket socket) {
    beast::ssl_stream<net::ip::tcp::socket> stream(std::move(socket), tls_);
    beast::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) return;  // The client refused our certificate.
    beast::flat_buffer buffer;
    http::request<http::empty_body> request;
    http::read(stream, buffer, request, ec);
    if (ec) return;
    http::response<http::string_body> response;
    {
      absl::MutexLock lock(&mu_);
      ++requests_;
      response.result(status_);
      response.body() = body_;
    }
    response.set(http::field::content_type, "application/json");
    response.prepare_payload();
    http::write(stream, response, ec);
    stream.shutdown(ec);
  }

  net::io_context io_;
  ssl::context tls_{ssl::context::tls_server};
  net::ip::tcp::acceptor acceptor_{io_};
  std::thread thread_;
  absl::Mutex mu_;
  http::status status_ ABSL_GUARDED_BY(mu_) = http::status::ok;
  std::string body_ ABSL_GUARDED_BY(mu_);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string Claims() {
  return absl::StrCat(R"({"sub":"u1","exp":)", absl::ToUnixSeconds(absl::Now()) + 600, "}");
}

// Polls `check` for up to five seconds.
template <class Check>
bool Eventually(Check check) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!check()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

class JwksUrlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = absl::StrCat(::testing::TempDir(), "/jwks-ca-", getpid(), ".pem");
    std::ofstream(ca_file_) << ca_.cert_pem();
    server_ =
        // An address, not "localhost": a fresh Debian chroot resolves no names.
        std::make_unique<JwksServer>(
            ca_.Issue({.common_name = "idp", .ip_addresses = {"127.0.0.1"}}));
  }
  void TearDown() override { std::remove(ca_file_.c_str()); }

  JwksUrlOptions Options() {
    JwksUrlOptions o;
    o.url = absl::StrCat("https://127.0.0.1:", server_->port(), "/realms/chat/certs");
    o.ca_file = ca_file_;
    o.min_refetch = absl::Milliseconds(200);
    o.min_backoff = absl::Milliseconds(200);
    o.max_backoff = absl::Milliseconds(400);
    return o;
  }

  chat::RealClock clock_;
  chat::testing::TestCa ca_{"provider CA"};
  std::string ca_file_;
  std::unique_ptr<JwksServer> server_;
  const TestKey first_ = TestKey::Make("RS256", "2026-11");
  const TestKey second_ = TestKey::Make("ES256", "2026-12");

  // Starts fetching with `o` (url_) and a verifier over its keys (verifier_),
  // both gone before the provider.
  void StartVerifier(const JwksUrlOptions& o) {
    absl::StatusOr<std::unique_ptr<JwksUrl>> source = JwksUrl::Start(o);
    ASSERT_TRUE(source.ok()) << source.status();
    url_ = source->get();
    TokenOptions options;
    options.keys = std::shared_ptr<KeySource>(std::move(*source));
    verifier_ = std::make_unique<TokenVerifier>(options, &clock_);
  }
  JwksUrl* url_ = nullptr;
  std::unique_ptr<TokenVerifier> verifier_;
};

TEST_F(JwksUrlTest, FetchesAtStartAndFindsARotationThroughAnUnknownKid) {
  server_->Set(http::status::ok, Jwks({first_.Jwk()}));
  ASSERT_NO_FATAL_FAILURE(StartVerifier(Options()));
  TokenVerifier& verifier = *verifier_;
  JwksUrl* url = url_;
  ASSERT_TRUE(Eventually([&] { return verifier.Verify(first_.Sign(Claims())).ok(); }));
  // The provider publishes its next key; the first token naming it asks again.
  server_->Set(http::status::ok, Jwks({first_.Jwk(), second_.Jwk()}));
  EXPECT_THAT(verifier.Verify(second_.Sign(Claims())).status().message(),
              HasSubstr(R"(unknown key id (kid) "2026-12")"));
  EXPECT_TRUE(Eventually([&] { return verifier.Verify(second_.Sign(Claims())).ok(); }));
  EXPECT_TRUE(verifier.Verify(first_.Sign(Claims())).ok());
  // Unknown kids do not hammer the provider: at most one fetch per min_refetch.
  const uint64_t before = url->attempts();
  const TestKey stranger = TestKey::Make("EdDSA", "nobody");
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(verifier.Verify(stranger.Sign(Claims())).ok());
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_LE(url->attempts() - before, 4u);
}

TEST_F(JwksUrlTest, AnOutageKeepsTheKeysAndBacksOff) {
  server_->Set(http::status::ok, Jwks({first_.Jwk()}));
  JwksUrlOptions o = Options();
  o.refresh = absl::Milliseconds(100);  // Refetch all the time, to meet the outage.
  absl::StatusOr<std::unique_ptr<JwksUrl>> source = JwksUrl::Start(o);
  ASSERT_TRUE(source.ok()) << source.status();
  JwksUrl* url = source->get();
  ASSERT_TRUE(Eventually([&] { return url->Keys()->size() == 1; }));
  server_->Set(http::status::service_unavailable, "down");
  const int before = server_->requests();
  absl::SleepFor(absl::Seconds(2));
  // Still the keys it had; and backing off (200-400 ms) rather than every 100 ms.
  EXPECT_NE(url->Keys()->Find("2026-11"), nullptr);
  EXPECT_LE(server_->requests() - before, 11);
  EXPECT_GE(server_->requests() - before, 3);
  server_->Set(http::status::ok, Jwks({second_.Jwk()}));
  EXPECT_TRUE(Eventually([&] { return url->Keys()->Find("2026-12") != nullptr; }));
}

// The provider's key set expires (its refresh is due) and the next one has
// retired the old key: the old key's tokens are refused from then on, the new
// key's taken, without a restart and without a token asking for it.
TEST_F(JwksUrlTest, AnExpiredKeySetIsReplacedAndItsRetiredKeysTokensRefused) {
  server_->Set(http::status::ok, Jwks({first_.Jwk()}));
  JwksUrlOptions o = Options();
  o.refresh = absl::Milliseconds(300);
  ASSERT_NO_FATAL_FAILURE(StartVerifier(o));
  TokenVerifier& verifier = *verifier_;
  JwksUrl* url = url_;
  ASSERT_TRUE(Eventually([&] { return verifier.Verify(first_.Sign(Claims())).ok(); }));
  server_->Set(http::status::ok, Jwks({second_.Jwk()}));
  ASSERT_TRUE(Eventually([&] { return url->Keys()->Find("2026-12") != nullptr; }));
  EXPECT_EQ(url->Keys()->Find("2026-11"), nullptr);
  EXPECT_THAT(verifier.Verify(first_.Sign(Claims())).status().message(),
              HasSubstr(R"(unknown key id (kid) "2026-11")"));
  EXPECT_TRUE(verifier.Verify(second_.Sign(Claims())).ok());
}

TEST_F(JwksUrlTest, ACertificateFromAnotherCaLoadsNothing) {
  server_->Set(http::status::ok, Jwks({first_.Jwk()}));
  chat::testing::TestCa other("another CA");
  const std::string other_file = ca_file_ + ".other";
  std::ofstream(other_file) << other.cert_pem();
  JwksUrlOptions o = Options();
  o.ca_file = other_file;
  absl::StatusOr<std::unique_ptr<JwksUrl>> source = JwksUrl::Start(o);
  ASSERT_TRUE(source.ok()) << source.status();
  JwksUrl* url = source->get();
  ASSERT_TRUE(Eventually([&] { return url->attempts() >= 1; }));
  TokenOptions options;
  options.keys = std::shared_ptr<KeySource>(std::move(*source));
  TokenVerifier verifier(options, &clock_);
  EXPECT_THAT(verifier.Verify(first_.Sign(Claims())).status().message(),
              HasSubstr("keys are not loaded yet"));
  EXPECT_EQ(server_->requests(), 0);  // The TLS handshake failed: no request was made.
  std::remove(other_file.c_str());
}

TEST_F(JwksUrlTest, StoppingDoesNotWaitForAFetchThatHangs) {
  // A provider that accepts the connection and then says nothing.
  net::io_context io;
  net::ip::tcp::acceptor silent(io, {net::ip::make_address("127.0.0.1"), 0});
  net::ip::tcp::socket held(io);
  std::thread accepting([&] { silent.accept(held); });
  JwksUrlOptions o = Options();
  o.url = absl::StrCat("https://127.0.0.1:", silent.local_endpoint().port(), "/certs");
  o.timeout = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<JwksUrl>> source = JwksUrl::Start(o);
  ASSERT_TRUE(source.ok()) << source.status();
  accepting.join();  // The fetch is under way, waiting for the TLS handshake.
  ASSERT_TRUE(Eventually([&] { return (*source)->attempts() == 1; }));
  const absl::Time start = absl::Now();
  source->reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(JwksUrlTest, StoppingDoesNotWaitForAHostNameLookup) {
  // A name, looked up aside: whether it resolves here (a silent provider
  // then), fails, or hangs (a minimal chroot's DNS never answers), the
  // destructor leaves the lookup behind instead of waiting for it.
  net::io_context io;
  net::ip::tcp::acceptor silent(io, {net::ip::make_address("127.0.0.1"), 0});
  JwksUrlOptions o = Options();
  o.url = absl::StrCat("https://localhost:", silent.local_endpoint().port(), "/certs");
  o.timeout = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<JwksUrl>> source = JwksUrl::Start(o);
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_TRUE(Eventually([&] { return (*source)->attempts() == 1; }));
  absl::SleepFor(absl::Milliseconds(100));  // Into the lookup, or past it.
  const absl::Time start = absl::Now();
  source->reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(JwksUrlTest, OnlyHttpsUrls) {
  JwksUrlOptions o = Options();
  o.url = absl::StrCat("http://127.0.0.1:", server_->port(), "/certs");
  EXPECT_THAT(JwksUrl::Start(o).status().message(), HasSubstr("must be an https:// URL"));
  o.url = "not a url";
  EXPECT_EQ(JwksUrl::Start(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edge
