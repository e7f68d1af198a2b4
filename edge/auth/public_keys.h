// Public keys for signed tokens: a JSON Web Key Set (RFC 7517), as identity
// providers publish it (Keycloak, Auth0, Okta, Cognito, ...), and the JOSE
// signature algorithms verified with them (RFC 7518): RS256/384/512,
// PS256/384/512, ES256/384 and EdDSA (Ed25519). OpenSSL builds the keys and
// checks the signatures; nothing here is cryptography of our own.
//
//   absl::StatusOr<std::shared_ptr<const PublicKeys>> keys = PublicKeys::Parse(jwks_json);
//   const PublicKeys::Key* key = (*keys)->Find(kid);
//   absl::Status ok = VerifySignature("RS256", *key, signing_input, signature);
//
// A key verifies only the algorithms of its own type (an RSA key never an
// ES256 or HS256 signature: no algorithm confusion), and only the one its
// JWK names in "alg", when it names one. Keys whose "use" is not "sig" are
// left out, and so are keys the edge cannot use (another type or curve, an
// RSA modulus under 2048 or over 16384 bits, a malformed one), each with its
// reason in skipped(): a provider's JWKS may carry keys for others.
//
// Immutable once parsed, so thread-safe.
#ifndef CHAT_EDGE_AUTH_PUBLIC_KEYS_H_
#define CHAT_EDGE_AUTH_PUBLIC_KEYS_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edge {

class PublicKeys {
 public:
  struct Key {
    std::string kid;
    std::string kty;  // "RSA", "EC" or "OKP".
    std::string crv;  // "P-256", "P-384", "Ed25519"; empty for RSA.
    std::string alg;  // The JWK's "alg"; empty: any of its type's.
    std::shared_ptr<EVP_PKEY> pkey;
  };

  // INVALID_ARGUMENT for a document that is not a JWKS, or one with no key
  // the edge can use (saying why for each).
  static absl::StatusOr<std::shared_ptr<const PublicKeys>> Parse(absl::string_view jwks_json);

  // The key with this id (of the type `alg` needs, if two share the id);
  // with an empty `kid`, the only key when there is one.
  const Key* Find(absl::string_view kid, absl::string_view alg = "") const;
  size_t size() const { return keys_.size(); }
  // The keys left out, each with why.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  std::vector<Key> keys_;
  std::vector<std::string> skipped_;
};

// True for the algorithms verified with public keys (not HS256).
bool IsPublicKeyAlgorithm(absl::string_view alg);

// OK if `signature` (as in a JWS: raw R||S for ECDSA) signs `input` under
// `key` with `alg`; UNAUTHENTICATED saying why otherwise.
absl::Status VerifySignature(absl::string_view alg, const PublicKeys::Key& key,
                             absl::string_view input, absl::string_view signature);

}  // namespace edge

#endif  // CHAT_EDGE_AUTH_PUBLIC_KEYS_H_
