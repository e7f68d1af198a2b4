// Signed identity for the edge: JSON Web Tokens (RFC 7519), signed either
// with HMAC-SHA-256 (HS256) under a shared secret, or by an identity
// provider with a private key whose public half the edge has from a JWKS
// (RS256/384/512, PS256/384/512, ES256/384, EdDSA; see public_keys.h).
// OpenSSL computes and compares the MAC (in constant time) and verifies the
// signatures; nothing here is cryptography of our own.
//
//   TokenVerifier verifier({.secret = secret, .keys = jwks}, &clock);
//   absl::StatusOr<User> user = verifier.Verify(token);   // UNAUTHENTICATED, with why
//   if (!user->MayJoin("lobby")) ...                        // the `rooms` claim
//
// Claims: `sub` (the user id, required), `name` (the display name; else
// `preferred_username`, as OpenID Connect providers put it; else the id),
// `exp` (required) and `nbf` (optional), both NumericDate seconds, and
// `rooms` (optional: room names or `*`-patterns the user may join); with an
// issuer or audience configured, `iss` must equal it and `aud` (a string or
// a list) must contain it. The header's `alg` picks the check: HS256 only
// with the secret, the others only with a public key of their own type,
// found by the header's `kid` (or the only key); "none" and every other
// algorithm are refused, whatever the signature says.
//
// Immutable after construction (the key source is thread-safe), so thread-safe.
#ifndef CHAT_EDGE_AUTH_TOKEN_H_
#define CHAT_EDGE_AUTH_TOKEN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "edge/auth/key_source.h"
#include "shared/clock.h"

namespace edge {

// Who may connect: --auth=off|optional|required.
enum class AuthMode { kOff, kOptional, kRequired };
absl::StatusOr<AuthMode> ParseAuthMode(absl::string_view text);

struct User {
  std::string id;
  std::string name;
  absl::Time expires = absl::InfiniteFuture();
  // Room names or `*`-patterns; empty: every room.
  std::vector<std::string> rooms;
  // The token's claims as JSON, for consumers that want more.
  std::string claims_json;

  bool MayJoin(absl::string_view room) const;
};

struct TokenOptions {
  // HS256's shared secret (--jwt_secret_file); empty: HS256 tokens are refused.
  std::string secret;
  // The identity provider's public keys (--jwks_file); null: tokens signed
  // with a private key are refused.
  std::shared_ptr<KeySource> keys;
  // Set: the token's `iss` must be this (--jwt_issuer).
  std::string issuer;
  // Set: the token's `aud` must be or include this (--jwt_audience).
  std::string audience;
  // Forgives clock skew on exp and nbf.
  absl::Duration leeway = absl::Seconds(5);
};

class TokenVerifier {
 public:
  // `clock` must outlive the verifier.
  TokenVerifier(TokenOptions options, const chat::Clock* clock);
  // HS256 only.
  TokenVerifier(std::string secret, const chat::Clock* clock,
                absl::Duration leeway = absl::Seconds(5));

  absl::StatusOr<User> Verify(absl::string_view token) const;
  // chat::ReasonOf a refusal for a token past its expiry (only those).
  static constexpr char kExpired[] = "expired";
  // An HS256 token for `user` valid for `ttl` from now (tests, backends, the
  // local run); needs the secret (can_mint()).
  std::string Mint(const User& user, absl::Duration ttl) const;
  bool can_mint() const { return !options_.secret.empty(); }

 private:
  std::string Sign(absl::string_view signing_input) const;
  // OK if the signature over `input` verifies for the header's alg and kid.
  absl::Status CheckSignature(const std::string& alg, const std::string& kid,
                              absl::string_view input, absl::string_view signature) const;

  const TokenOptions options_;
  const chat::Clock* const clock_;
};

// base64url without padding (RFC 7515, section 2), as JWTs use it.
std::string Base64UrlEncode(absl::string_view bytes);
// False for anything that is not base64url.
bool Base64UrlDecode(absl::string_view text, std::string* bytes);

}  // namespace edge

#endif  // CHAT_EDGE_AUTH_TOKEN_H_
