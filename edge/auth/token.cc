#include "edge/auth/token.h"

#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "shared/reason.h"

namespace edge {
namespace json = boost::json;

namespace {

absl::Status Refused(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("token refused: ", why));
}

// A NumericDate claim (seconds since the epoch), if present and a number.
bool SecondsClaim(const json::object& claims, const char* name, absl::Time* out) {
  const json::value* v = claims.if_contains(name);
  if (v == nullptr) return false;
  if (v->is_int64()) {
    *out = absl::FromUnixSeconds(v->as_int64());
  } else if (v->is_uint64()) {
    *out = absl::FromUnixSeconds(static_cast<int64_t>(v->as_uint64()));
  } else if (v->is_double()) {
    *out = absl::FromUnixSeconds(static_cast<int64_t>(v->as_double()));
  } else {
    return false;
  }
  return true;
}

// True if `aud` is `audience` or a list that contains it.
bool HasAudience(const json::object& claims, const std::string& audience) {
  const json::value* aud = claims.if_contains("aud");
  if (aud == nullptr) return false;
  if (aud->is_string()) return aud->as_string() == audience;
  if (!aud->is_array()) return false;
  for (const json::value& a : aud->as_array()) {
    if (a.is_string() && a.as_string() == audience) return true;
  }
  return false;
}

}  // namespace

absl::Status TokenVerifier::CheckSignature(const std::string& alg, const std::string& kid,
                                           absl::string_view input,
                                           absl::string_view signature) const {
  if (alg == "HS256") {
    if (options_.secret.empty()) {
      return absl::UnauthenticatedError(
          "HS256 tokens are not accepted here (no --jwt_secret_file)");
    }
    const std::string expected = Sign(input);
    if (signature.size() != expected.size() ||
        CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
      return absl::UnauthenticatedError("bad signature");
    }
    return absl::OkStatus();
  }
  if (!IsPublicKeyAlgorithm(alg)) {
    return absl::UnauthenticatedError(
        absl::StrCat("algorithm \"", alg,
                     "\" is not accepted (HS256, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"));
  }
  if (options_.keys == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat(alg, " tokens are not accepted here (no --jwks_file or --jwks_url)"));
  }
  std::shared_ptr<const PublicKeys> keys = options_.keys->Keys();
  if (keys->size() == 0) {
    options_.keys->UnknownKid(kid);
    return absl::UnauthenticatedError(
        "the identity provider's keys are not loaded yet (--jwks_url); try again shortly");
  }
  const PublicKeys::Key* key = keys->Find(kid, alg);
  if (key == nullptr) {
    if (kid.empty()) {
      return absl::UnauthenticatedError(
          "its header names no key id (kid) and the key set has several keys");
    }
    options_.keys->UnknownKid(kid);  // A rotation the provider may have just published.
    return absl::UnauthenticatedError(absl::StrCat("unknown key id (kid) \"", kid, "\""));
  }
  return VerifySignature(alg, *key, input, signature);
}

absl::StatusOr<AuthMode> ParseAuthMode(absl::string_view text) {
  if (text == "off") return AuthMode::kOff;
  if (text == "optional") return AuthMode::kOptional;
  if (text == "required") return AuthMode::kRequired;
  return absl::InvalidArgumentError(
      absl::StrCat("--auth must be off, optional or required; got \"", text, "\""));
}

bool User::MayJoin(absl::string_view room) const {
  if (rooms.empty()) return true;
  const std::string name(room);
  for (const std::string& pattern : rooms) {
    if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string Base64UrlEncode(absl::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(n);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

bool Base64UrlDecode(absl::string_view text, std::string* bytes) {
  if (text.size() % 4 == 1) return false;
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return false;  // Not in base64url's alphabet (and no padding).
    }
  }
  const size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');
  bytes->assign(3 * standard.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes->data()),
                                reinterpret_cast<const unsigned char*>(standard.data()),
                                static_cast<int>(standard.size()));
  if (n < 0) return false;
  bytes->resize(static_cast<size_t>(n) - padding);
  return true;
}

TokenVerifier::TokenVerifier(TokenOptions options, const chat::Clock* clock)
    : options_(std::move(options)), clock_(clock) {}

TokenVerifier::TokenVerifier(std::string secret, const chat::Clock* clock, absl::Duration leeway)
    : TokenVerifier(TokenOptions{std::move(secret), nullptr, "", "", leeway}, clock) {}

std::string TokenVerifier::Sign(absl::string_view signing_input) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const std::string& secret = options_.secret;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &length);
  return std::string(reinterpret_cast<const char*>(mac), length);
}

absl::StatusOr<User> TokenVerifier::Verify(absl::string_view token) const {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Refused("not a JWT (three base64url parts joined by '.')");
  std::string header_json, claims_json, signature;
  if (!Base64UrlDecode(parts[0], &header_json) || !Base64UrlDecode(parts[1], &claims_json) ||
      !Base64UrlDecode(parts[2], &signature)) {
    return Refused("not base64url");
  }
  boost::system::error_code ec;
  json::value header = json::parse(header_json, ec);
  if (ec || !header.is_object()) return Refused("its header is not a JSON object");
  const json::value* alg = header.as_object().if_contains("alg");
  if (alg == nullptr || !alg->is_string()) return Refused("its header names no algorithm");
  const json::value* kid = header.as_object().if_contains("kid");
  if (kid != nullptr && !kid->is_string()) return Refused("its key id (kid) is not a string");
  if (absl::Status s = CheckSignature(
          std::string(alg->as_string()), kid == nullptr ? "" : std::string(kid->as_string()),
          token.substr(0, parts[0].size() + 1 + parts[1].size()), signature);
      !s.ok()) {
    return Refused(s.message());
  }
  json::value claims = json::parse(claims_json, ec);
  if (ec || !claims.is_object()) return Refused("its claims are not a JSON object");
  const json::object& c = claims.as_object();
  User user;
  const json::value* sub = c.if_contains("sub");
  if (sub == nullptr || !sub->is_string() || sub->as_string().empty()) {
    return Refused("no \"sub\" (the user id)");
  }
  user.id = std::string(sub->as_string());
  user.name = user.id;
  for (const char* claim : {"preferred_username", "name"}) {
    const json::value* name = c.if_contains(claim);
    if (name != nullptr && name->is_string() && !name->as_string().empty()) {
      user.name = std::string(name->as_string());
    }
  }
  const absl::Time now = clock_->Now();
  const absl::Duration leeway = options_.leeway;
  if (!SecondsClaim(c, "exp", &user.expires)) return Refused("no \"exp\" (its expiry)");
  if (user.expires + leeway <= now) {
    return chat::WithReason(Refused(absl::StrCat("expired at ", absl::FormatTime(user.expires))),
                            kExpired);
  }
  absl::Time not_before;
  if (SecondsClaim(c, "nbf", &not_before) && now + leeway < not_before) {
    return Refused(absl::StrCat("not valid before ", absl::FormatTime(not_before)));
  }
  if (!options_.issuer.empty()) {
    const json::value* iss = c.if_contains("iss");
    if (iss == nullptr || !iss->is_string() || iss->as_string() != options_.issuer) {
      return Refused(absl::StrCat("its issuer (iss) is not \"", options_.issuer, "\""));
    }
  }
  if (!options_.audience.empty() && !HasAudience(c, options_.audience)) {
    return Refused(absl::StrCat("its audience (aud) does not include \"", options_.audience, "\""));
  }
  if (const json::value* rooms = c.if_contains("rooms")) {
    if (!rooms->is_array()) return Refused("\"rooms\" is not a list of room names");
    for (const json::value& r : rooms->as_array()) {
      if (!r.is_string()) return Refused("\"rooms\" is not a list of room names");
      user.rooms.emplace_back(r.as_string());
    }
    if (user.rooms.empty()) user.rooms.push_back("");  // An empty list admits no room.
  }
  user.claims_json = std::move(claims_json);
  return user;
}

std::string TokenVerifier::Mint(const User& user, absl::Duration ttl) const {
  json::object claims;
  claims["sub"] = user.id;
  claims["name"] = user.name.empty() ? user.id : user.name;
  claims["exp"] = absl::ToUnixSeconds(clock_->Now() + ttl);
  // What this verifier asks of every token, so that its own tokens pass.
  if (!options_.issuer.empty()) claims["iss"] = options_.issuer;
  if (!options_.audience.empty()) claims["aud"] = options_.audience;
  if (!user.rooms.empty()) {
    json::array rooms;
    for (const std::string& r : user.rooms) rooms.emplace_back(r);
    claims["rooms"] = std::move(rooms);
  }
  const std::string input = absl::StrCat(Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})"), ".",
                                         Base64UrlEncode(json::serialize(claims)));
  return absl::StrCat(input, ".", Base64UrlEncode(Sign(input)));
}

}  // namespace edge
