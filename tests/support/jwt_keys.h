// Signing keys made at test time, as an identity provider holds them: each
// signs tokens with its JOSE algorithm and publishes its public half as a
// JWK, for the edge's PublicKeys and TokenVerifier tests. OpenSSL makes the
// keys and the signatures.
//
//   TestKey rsa = TestKey::Make("RS256", "k1");
//   std::string jwks = Jwks({rsa.Jwk()});
//   std::string token = rsa.Sign(R"({"sub":"u1","exp":...})");
#ifndef CHAT_TESTS_SUPPORT_JWT_KEYS_H_
#define CHAT_TESTS_SUPPORT_JWT_KEYS_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

namespace chat::testing {

class TestKey {
 public:
  // `alg`: RS256/384/512, PS256/384/512, ES256, ES384 or EdDSA.
  static TestKey Make(const std::string& alg, const std::string& kid);

  // The public key as a JWK object; `with_alg` adds its "alg".
  std::string Jwk(bool with_alg = false) const;
  // A compact JWS of `claims_json`, with a header of this key's alg and kid
  // (or `header_json` as given).
  std::string Sign(const std::string& claims_json, const std::string& header_json = "") const;
  // The public key in PEM (SubjectPublicKeyInfo), as a confused verifier
  // might take it for an HMAC secret.
  std::string PublicPem() const;
  const std::string& alg() const { return alg_; }
  const std::string& kid() const { return kid_; }

 private:
  std::string alg_;
  std::string kid_;
  std::shared_ptr<EVP_PKEY> pkey_;
};

// {"keys": [jwk, ...]}
std::string Jwks(const std::vector<std::string>& jwks);

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_JWT_KEYS_H_
