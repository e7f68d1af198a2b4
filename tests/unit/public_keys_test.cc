// Tokens signed with private keys (edge/auth/public_keys.h, key_source.h,
// token.h): every algorithm with a key made at test time, rotation through a
// JWKS file, unknown and missing key ids, keys of the wrong type (algorithm
// confusion), issuer and audience, and JWKS documents that are not.
#include "edge/auth/public_keys.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "edge/auth/key_source.h"
#include "edge/auth/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared/clock.h"
#include "tests/support/jwt_keys.h"

namespace edge {
namespace {

using chat::testing::Jwks;
using chat::testing::TestKey;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

std::string Claims(const std::string& extra = "") {
  return absl::StrCat(R"({"sub":"u1","name":"Ann","exp":)", absl::ToUnixSeconds(kNow) + 3600, extra,
                      "}");
}

// A KeySource that serves what the test sets.
class FixedKeys : public KeySource {
 public:
  explicit FixedKeys(const std::string& jwks) { Set(jwks); }
  void Set(const std::string& jwks) {
    absl::StatusOr<std::shared_ptr<const PublicKeys>> keys = PublicKeys::Parse(jwks);
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *keys;
  }
  std::shared_ptr<const PublicKeys> Keys() override { return keys_; }

 private:
  std::shared_ptr<const PublicKeys> keys_;
};

class PublicKeyTokenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    keys_ = new std::vector<TestKey>;
    for (const char* alg :
         {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}) {
      keys_->push_back(TestKey::Make(alg, absl::StrCat("kid-", alg)));
    }
  }
  static void TearDownTestSuite() { delete keys_; }

  TokenVerifier Verifier(const std::string& jwks, TokenOptions options = {}) {
    options.keys = std::make_shared<FixedKeys>(jwks);
    return TokenVerifier(std::move(options), &clock_);
  }
  std::string AllJwks() {
    std::vector<std::string> jwks;
    for (const TestKey& k : *keys_) jwks.push_back(k.Jwk());
    return Jwks(jwks);
  }

  static std::vector<TestKey>* keys_;
  chat::FakeClock clock_{kNow};
};
std::vector<TestKey>* PublicKeyTokenTest::keys_ = nullptr;

TEST_F(PublicKeyTokenTest, EveryAlgorithmVerifiesWithItsKey) {
  TokenVerifier verifier = Verifier(AllJwks());
  for (const TestKey& key : *keys_) {
    absl::StatusOr<User> user = verifier.Verify(key.Sign(Claims()));
    ASSERT_TRUE(user.ok()) << key.alg() << ": " << user.status();
    EXPECT_EQ(user->id, "u1");
    EXPECT_EQ(user->name, "Ann");
  }
}

TEST_F(PublicKeyTokenTest, ATamperedTokenOrAnotherKeysSignatureIsRefused) {
  TokenVerifier verifier = Verifier(AllJwks());
  for (const TestKey& key : *keys_) {
    std::string token = key.Sign(Claims());
    // Another claim under the same signature.
    const std::string other = key.Sign(R"({"sub":"mallory","exp":1800000000})");
    const std::string forged =
        absl::StrCat(other.substr(0, other.rfind('.')), token.substr(token.rfind('.')));
    absl::StatusOr<User> user = verifier.Verify(forged);
    EXPECT_EQ(user.status().code(), absl::StatusCode::kUnauthenticated) << key.alg();
    EXPECT_THAT(user.status().message(), HasSubstr("bad signature")) << key.alg();
  }
  // A key of the same type that did not sign it, under the signer's kid.
  const TestKey stranger = TestKey::Make("ES256", "kid-ES256");
  EXPECT_THAT(verifier.Verify(stranger.Sign(Claims())).status().message(),
              HasSubstr("bad signature"));
}

TEST_F(PublicKeyTokenTest, AKeyVerifiesOnlyItsOwnTypeOfAlgorithm) {
  const TestKey& rsa = (*keys_)[0];   // RS256
  const TestKey& p256 = (*keys_)[6];  // ES256
  // An RSA key asked to verify ES256, and a P-256 key asked for ES384 or EdDSA.
  TokenVerifier verifier = Verifier(Jwks({rsa.Jwk(), p256.Jwk()}));
  const std::string es256_under_rsa_kid =
      p256.Sign(Claims(), R"({"alg":"ES256","kid":"kid-RS256"})");
  EXPECT_THAT(verifier.Verify(es256_under_rsa_kid).status().message(),
              HasSubstr(R"(key "kid-RS256" (RSA) does not verify ES256)"));
  EXPECT_THAT(verifier.Verify(p256.Sign(Claims(), R"({"alg":"EdDSA","kid":"kid-ES256"})"))
                  .status()
                  .message(),
              HasSubstr("does not verify EdDSA"));
  // A JWK's own "alg" binds it: an RSA key published for PS256 refuses RS256.
  TokenVerifier bound = Verifier(Jwks({(*keys_)[3].Jwk(/*with_alg=*/true)}));
  EXPECT_TRUE(bound.Verify((*keys_)[3].Sign(Claims())).ok());
  EXPECT_THAT(bound.Verify((*keys_)[3].Sign(Claims(), R"({"alg":"RS256","kid":"kid-PS256"})"))
                  .status()
                  .message(),
              HasSubstr("for PS256) does not verify RS256"));
}

TEST_F(PublicKeyTokenTest, AnRsaPublicKeyAsAnHs256SecretIsRefused) {
  // The classic confusion: the attacker signs HS256 with the public key's PEM.
  const TestKey& rsa = (*keys_)[0];
  const std::string pem = rsa.PublicPem();
  // A verifier whose secret is the PEM mints exactly that forgery.
  User ann;
  ann.id = "u1";
  ann.name = "Ann";
  const std::string hs256 = TokenVerifier(pem, &clock_).Mint(ann, absl::Hours(1));
  // Only public keys configured: HS256 is not accepted at all.
  TokenVerifier keys_only = Verifier(Jwks({rsa.Jwk()}));
  EXPECT_THAT(keys_only.Verify(hs256).status().message(),
              HasSubstr("HS256 tokens are not accepted here"));
  // Keys and a (different) secret: the HS256 check uses the secret, never a key.
  TokenOptions both;
  both.secret = "the-real-secret-0123456789abcdef0123";
  TokenVerifier with_secret = Verifier(Jwks({rsa.Jwk()}), both);
  EXPECT_THAT(with_secret.Verify(hs256).status().message(), HasSubstr("bad signature"));
}

TEST_F(PublicKeyTokenTest, KeyIdsPickTheKey) {
  TokenVerifier verifier = Verifier(AllJwks());
  const TestKey& rsa = (*keys_)[0];
  EXPECT_THAT(verifier.Verify(rsa.Sign(Claims(), R"({"alg":"RS256","kid":"rotated-away"})"))
                  .status()
                  .message(),
              HasSubstr(R"(unknown key id (kid) "rotated-away")"));
  EXPECT_THAT(verifier.Verify(rsa.Sign(Claims(), R"({"alg":"RS256"})")).status().message(),
              HasSubstr("names no key id (kid) and the key set has several keys"));
  // With one key in the set, no kid is needed.
  EXPECT_TRUE(Verifier(Jwks({rsa.Jwk()})).Verify(rsa.Sign(Claims(), R"({"alg":"RS256"})")).ok());
  EXPECT_THAT(verifier.Verify(rsa.Sign(Claims(), R"({"alg":"RS256","kid":7})")).status().message(),
              HasSubstr("kid) is not a string"));
}

TEST_F(PublicKeyTokenTest, OneKidOnTwoKeysPicksTheTypeTheAlgorithmNeeds) {
  const TestKey rsa = TestKey::Make("RS256", "shared");
  const TestKey ec = TestKey::Make("ES256", "shared");
  TokenVerifier verifier = Verifier(Jwks({rsa.Jwk(), ec.Jwk()}));
  EXPECT_TRUE(verifier.Verify(rsa.Sign(Claims())).ok());
  EXPECT_TRUE(verifier.Verify(ec.Sign(Claims())).ok());
}

TEST_F(PublicKeyTokenTest, IssuerAndAudienceWhenConfigured) {
  const TestKey& key = (*keys_)[8];  // EdDSA
  TokenOptions options;
  options.issuer = "https://id.example.com/realms/chat";
  options.audience = "chat-edge";
  TokenVerifier verifier = Verifier(AllJwks(), options);
  const std::string iss = R"(,"iss":"https://id.example.com/realms/chat")";
  EXPECT_TRUE(verifier.Verify(key.Sign(Claims(iss + R"(,"aud":"chat-edge")"))).ok());
  EXPECT_TRUE(verifier.Verify(key.Sign(Claims(iss + R"(,"aud":["account","chat-edge"])"))).ok());
  EXPECT_THAT(verifier.Verify(key.Sign(Claims(R"(,"aud":"chat-edge")"))).status().message(),
              HasSubstr("issuer (iss) is not"));
  EXPECT_THAT(
      verifier.Verify(key.Sign(Claims(iss + R"(,"iss2":1,"aud":["account"])"))).status().message(),
      HasSubstr(R"(audience (aud) does not include "chat-edge")"));
  EXPECT_THAT(verifier.Verify(key.Sign(Claims(iss))).status().message(),
              HasSubstr("audience (aud)"));
  // The verifier's own tokens (the dev issuer's, --mint_token) carry what it asks.
  TokenOptions with_secret = options;
  with_secret.secret = "the-secret-0123456789abcdef0123456789";
  TokenVerifier minting = Verifier(AllJwks(), with_secret);
  User ann;
  ann.id = "u1";
  EXPECT_TRUE(minting.Verify(minting.Mint(ann, absl::Hours(1))).ok());
  // An OpenID Connect token names its user in preferred_username.
  absl::StatusOr<User> oidc = Verifier(AllJwks()).Verify(
      key.Sign(absl::StrCat(R"({"sub":"f81d4fae","preferred_username":"ann.lee","exp":)",
                            absl::ToUnixSeconds(kNow) + 60, "}")));
  ASSERT_TRUE(oidc.ok()) << oidc.status();
  EXPECT_EQ(oidc->name, "ann.lee");
}

TEST(PublicKeysTest, DocumentsThatAreNotAJwksSayWhy) {
  EXPECT_THAT(PublicKeys::Parse("[]").status().message(), HasSubstr("not a JWKS"));
  EXPECT_THAT(PublicKeys::Parse(R"({"keys":[]})").status().message(),
              HasSubstr("no signing key the edge can use"));
  // Only an encryption key, or only a type we do not verify with: no key.
  EXPECT_THAT(PublicKeys::Parse(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})").status().message(),
              HasSubstr("no signing key the edge can use"));
  EXPECT_THAT(PublicKeys::Parse(R"({"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]})")
                  .status()
                  .message(),
              HasSubstr("too short"));
  EXPECT_THAT(
      PublicKeys::Parse(R"({"keys":[{"kty":"EC","kid":"b","crv":"P-256","x":"AAAA","y":"AAAA"}]})")
          .status()
          .message(),
      HasSubstr(R"(key 0 (kid "b", EC P-256): "x" and "y" of P-256 are 32 bytes each)"));
  const std::string off_curve =
      absl::StrCat(R"({"keys":[{"kty":"EC","kid":"c","crv":"P-256","x":")",
                   Base64UrlEncode(std::string(32, '\x01')), R"(","y":")",
                   Base64UrlEncode(std::string(32, '\x02')), R"("}]})");
  EXPECT_THAT(PublicKeys::Parse(off_curve).status().message(), HasSubstr(R"(kid "c")"));
  // Keys the edge cannot use beside a good one are left out, each said why, not fatal:
  // another type, another curve, a modulus too short.
  const TestKey key = TestKey::Make("ES256", "good");
  absl::StatusOr<std::shared_ptr<const PublicKeys>> mixed =
      PublicKeys::Parse(Jwks({R"({"kty":"oct","k":"c2VjcmV0"})",
                              R"({"kty":"EC","crv":"P-521","kid":"es512","x":"AA","y":"AA"})",
                              R"({"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"})", key.Jwk()}));
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ((*mixed)->size(), 1u);
  ASSERT_EQ((*mixed)->skipped().size(), 3u);
  EXPECT_THAT((*mixed)->skipped()[1], HasSubstr(R"(kid "es512", EC P-521)"));
  EXPECT_THAT((*mixed)->skipped()[2], HasSubstr("too short"));
  // A modulus over 16384 bits is refused before OpenSSL checks it.
  const std::string huge = Base64UrlEncode(std::string(2049, '\xff'));
  const std::string huge_message(
      PublicKeys::Parse(absl::StrCat(R"({"keys":[{"kty":"RSA","n":")", huge, R"(","e":"AQAB"}]})"))
          .status()
          .message());
  EXPECT_THAT(huge_message, HasSubstr("too long"));
}

class JwksFileTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = absl::StrCat(::testing::TempDir(), "/jwks-", getpid(), ".json"); }
  void TearDown() override { std::remove(path_.c_str()); }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }

  std::string path_;
  chat::FakeClock clock_{kNow};
};

TEST_F(JwksFileTest, ARotationTakesEffectWithoutARestart) {
  const TestKey old_key = TestKey::Make("RS256", "2026-11");
  const TestKey new_key = TestKey::Make("RS256", "2026-12");
  Write(Jwks({old_key.Jwk()}));
  absl::StatusOr<std::unique_ptr<JwksFile>> file = JwksFile::Open(path_, &clock_);
  ASSERT_TRUE(file.ok()) << file.status();
  TokenOptions options;
  options.keys = std::shared_ptr<KeySource>(std::move(*file));
  TokenVerifier verifier(options, &clock_);
  EXPECT_TRUE(verifier.Verify(old_key.Sign(Claims())).ok());
  EXPECT_THAT(verifier.Verify(new_key.Sign(Claims())).status().message(),
              HasSubstr(R"(unknown key id (kid) "2026-12")"));
  // The provider publishes both, then drops the old one.
  Write(Jwks({old_key.Jwk(), new_key.Jwk()}));
  EXPECT_FALSE(verifier.Verify(new_key.Sign(Claims())).ok());  // Not looked at again yet.
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(verifier.Verify(new_key.Sign(Claims())).ok());
  EXPECT_TRUE(verifier.Verify(old_key.Sign(Claims())).ok());
  Write(Jwks({new_key.Jwk()}));
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(verifier.Verify(new_key.Sign(Claims())).ok());
  EXPECT_THAT(verifier.Verify(old_key.Sign(Claims())).status().message(),
              HasSubstr("unknown key id"));
  // A broken version (half written) keeps the keys in use.
  Write(R"({"keys":[{"kty":"RS)");
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(verifier.Verify(new_key.Sign(Claims())).ok());
}

TEST_F(JwksFileTest, AMissingOrBadFileStopsTheStart) {
  EXPECT_EQ(JwksFile::Open(path_ + ".none", &clock_).status().code(), absl::StatusCode::kNotFound);
  Write("not json");
  EXPECT_THAT(JwksFile::Open(path_, &clock_).status().message(), HasSubstr("not a JWKS"));
}

}  // namespace
}  // namespace edge
