// Signed identity for the edge: JSON Web Tokens (RFC 7519) signed with
// HMAC-SHA-256 (HS256) under a shared secret. OpenSSL computes the MAC and
// compares it in constant time; nothing here is cryptography of our own.
//
//   TokenVerifier verifier(secret, &clock);
//   absl::StatusOr<User> user = verifier.Verify(token);   // UNAUTHENTICATED, with why
//   if (!user->MayJoin("lobby")) ...                        // the `rooms` claim
//
// Claims: `sub` (the user id, required), `name` (the display name; the id
// when absent), `exp` (required) and `nbf` (optional), both NumericDate
// seconds, and `rooms` (optional: room names or `*`-patterns the user may
// join). The header's `alg` must be "HS256": "none" and every other algorithm
// are refused, whatever the signature says.
//
// Immutable after construction, so thread-safe.
#ifndef CHAT_EDGE_AUTH_TOKEN_H_
#define CHAT_EDGE_AUTH_TOKEN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
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

class TokenVerifier {
 public:
  // `clock` must outlive the verifier. `leeway` forgives clock skew on exp and nbf.
  TokenVerifier(std::string secret, const chat::Clock* clock,
                absl::Duration leeway = absl::Seconds(5));

  absl::StatusOr<User> Verify(absl::string_view token) const;
  // A token for `user` valid for `ttl` from now (tests, backends, the local run).
  std::string Mint(const User& user, absl::Duration ttl) const;

 private:
  std::string Sign(absl::string_view signing_input) const;

  const std::string secret_;
  const chat::Clock* const clock_;
  const absl::Duration leeway_;
};

// base64url without padding (RFC 7515, section 2), as JWTs use it.
std::string Base64UrlEncode(absl::string_view bytes);
// False for anything that is not base64url.
bool Base64UrlDecode(absl::string_view text, std::string* bytes);

}  // namespace edge

#endif  // CHAT_EDGE_AUTH_TOKEN_H_
