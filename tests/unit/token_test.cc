// TokenVerifier (edge/auth/token.h) with a fixed test secret and a fake
// clock: every refusal, the claims it reads, and a token made elsewhere
// (Python's hmac, below) so that our encoding is checked against another.
#include "edge/auth/token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared/clock.h"
#include "shared/reason.h"

namespace edge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSecret[] = "test-secret-0123456789abcdef0123456789";
const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// Made with Python: hmac.new(secret, header.claims, sha256), base64url without padding.
constexpr char kPythonToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhbGljZSIsIm5hbWUiOiJBbGljZSIsImV4cCI6MTcwMDAwMzYwMCwicm9vbXMiOlsibG9iYnkiLCJ0ZWFt"
    "LSoiXX0.tjwuIgJnJDuavNXAIcCekxEzfrvoj4KXenNwg9Js_c4";

// A token over any header and claims, signed with HS256 under `secret`.
std::string Signed(const std::string& header, const std::string& claims,
                   const std::string& secret = kSecret) {
  const std::string input = absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(claims));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &n);
  return absl::StrCat(input, ".",
                      Base64UrlEncode(std::string(reinterpret_cast<const char*>(mac), n)));
}

const std::string kHs256 = R"({"alg":"HS256","typ":"JWT"})";
std::string Claims(const std::string& extra = "") {
  return absl::StrCat(R"({"sub":"bob","exp":)", absl::ToUnixSeconds(kNow) + 600, extra, "}");
}

class TokenTest : public ::testing::Test {
 protected:
  absl::Status Refusal(const std::string& token) { return verifier_.Verify(token).status(); }

  chat::FakeClock clock_{kNow};
  TokenVerifier verifier_{kSecret, &clock_};
};

TEST_F(TokenTest, ATokenMadeElsewhereNamesItsUserAndRooms) {
  absl::StatusOr<User> user = verifier_.Verify(kPythonToken);
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->id, "alice");
  EXPECT_EQ(user->name, "Alice");
  EXPECT_EQ(user->expires, absl::FromUnixSeconds(1700003600));
  EXPECT_THAT(user->rooms, ElementsAre("lobby", "team-*"));
  EXPECT_TRUE(user->MayJoin("lobby"));
  EXPECT_TRUE(user->MayJoin("team-blue"));
  EXPECT_FALSE(user->MayJoin("kitchen"));
  EXPECT_THAT(user->claims_json, HasSubstr(R"("sub":"alice")"));
}

TEST_F(TokenTest, MintedTokensVerifyAndANameDefaultsToTheId) {
  absl::StatusOr<User> user =
      verifier_.Verify(verifier_.Mint(User{.id = "carol"}, absl::Minutes(5)));
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->name, "carol");
  EXPECT_TRUE(user->rooms.empty());
  EXPECT_TRUE(user->MayJoin("anything"));
  EXPECT_EQ(user->expires, kNow + absl::Minutes(5));
}

TEST_F(TokenTest, EveryRefusalIsUnauthenticatedAndSaysWhy) {
  struct Case {
    std::string token;
    std::string why;
  };
  const Case cases[] = {
      {"not-a-jwt", "three base64url parts"},
      {"a.b", "three base64url parts"},
      {"a$.b.c", "base64url"},
      {Signed(kHs256, Claims(), "another-secret-0123456789abcdef0123"), "bad signature"},
      {Signed(R"({"alg":"none"})", Claims()), R"(algorithm "none")"},
      {absl::StrCat(Base64UrlEncode(R"({"alg":"none"})"), ".", Base64UrlEncode(Claims()), "."),
       R"(algorithm "none")"},
      {Signed(R"({"alg":"HS512"})", Claims()), R"(algorithm "HS512" is not accepted)"},
      {Signed(R"({"alg":"RS256"})", Claims()),
       "RS256 tokens are not accepted here (no --jwks_file or --jwks_url)"},
      {Signed(R"({"typ":"JWT"})", Claims()), "no algorithm"},
      {Signed(kHs256, "[1]"), "not a JSON object"},
      {Signed(kHs256, R"({"exp":1800000000})"), R"(no "sub")"},
      {Signed(kHs256, R"({"sub":"bob"})"), R"(no "exp")"},
      {Signed(kHs256, absl::StrCat(R"({"sub":"bob","exp":)", absl::ToUnixSeconds(kNow) - 60, "}")),
       "expired"},
      {Signed(kHs256, Claims(absl::StrCat(R"(,"nbf":)", absl::ToUnixSeconds(kNow) + 60))),
       "not valid before"},
      {Signed(kHs256, Claims(R"(,"rooms":"lobby")")), "list of room names"},
  };
  for (const Case& c : cases) {
    absl::Status s = Refusal(c.token);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << c.token;
    EXPECT_THAT(s.message(), HasSubstr(c.why)) << c.token;
    // Only an expired token says so in its reason (the metric's label).
    EXPECT_EQ(chat::ReasonOf(s) == TokenVerifier::kExpired, c.why == "expired") << c.token;
  }
  // The same claims, rightly signed, pass: each case fails for its own reason.
  EXPECT_TRUE(verifier_.Verify(Signed(kHs256, Claims())).ok());
}

TEST_F(TokenTest, ExpiryAndNotBeforeAllowAFewSecondsOfClockSkew) {
  const std::string soon =
      Signed(kHs256, absl::StrCat(R"({"sub":"bob","exp":)", absl::ToUnixSeconds(kNow) + 2, "}"));
  EXPECT_TRUE(verifier_.Verify(soon).ok());
  clock_.Advance(absl::Seconds(6));  // Past exp by 4 s: within the leeway of 5.
  EXPECT_TRUE(verifier_.Verify(soon).ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(Refusal(soon).code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(TokenTest, AnEmptyRoomsListAdmitsNoRoom) {
  absl::StatusOr<User> user = verifier_.Verify(Signed(kHs256, Claims(R"(,"rooms":[])")));
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_FALSE(user->MayJoin("lobby"));
}

TEST(Base64UrlTest, RoundTripsAndRefusesOtherAlphabets) {
  for (const std::string& s : {std::string(""), std::string("f"), std::string("fo"),
                               std::string("foo"), std::string("\xfb\xff\xfe", 3)}) {
    std::string back;
    ASSERT_TRUE(Base64UrlDecode(Base64UrlEncode(s), &back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(Base64UrlEncode(std::string("\xfb\xff\xfe", 3)), "-__-");
  std::string out;
  EXPECT_FALSE(Base64UrlDecode("+//+", &out));
  EXPECT_FALSE(Base64UrlDecode("Zm9v=", &out));
  EXPECT_FALSE(Base64UrlDecode("Z", &out));
}

TEST(AuthModeTest, ParsesTheThreeModes) {
  EXPECT_EQ(*ParseAuthMode("off"), AuthMode::kOff);
  EXPECT_EQ(*ParseAuthMode("optional"), AuthMode::kOptional);
  EXPECT_EQ(*ParseAuthMode("required"), AuthMode::kRequired);
  EXPECT_FALSE(ParseAuthMode("yes").ok());
}

}  // namespace
}  // namespace edge
