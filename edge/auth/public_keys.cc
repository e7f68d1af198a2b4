#include "edge/auth/public_keys.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <boost/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "edge/auth/token.h"

namespace edge {
namespace json = boost::json;

namespace {

// RSA moduli below this are refused (RFC 7518 asks for 2048 bits at least),
// and above this too (OpenSSL's checks of a huge one would take long).
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 16384;

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using Bignum = std::unique_ptr<BIGNUM, BnFree>;

std::shared_ptr<EVP_PKEY> Owned(EVP_PKEY* pkey) {
  return std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free);
}

// A JWK member that holds base64url bytes.
absl::StatusOr<std::string> Bytes(const json::object& jwk, const char* name) {
  const json::value* v = jwk.if_contains(name);
  std::string bytes;
  if (v == nullptr || !v->is_string() ||
      !Base64UrlDecode(absl::string_view(v->as_string().data(), v->as_string().size()), &bytes) ||
      bytes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is not base64url"));
  }
  return bytes;
}

std::string Text(const json::object& jwk, const char* name) {
  const json::value* v = jwk.if_contains(name);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// A public key from OSSL_PARAMs, checked by OpenSSL (a point on the curve).
absl::StatusOr<std::shared_ptr<EVP_PKEY>> FromParams(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* pkey = nullptr;
  const bool built = params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
                     EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  if (!built) {
    ERR_clear_error();
    return absl::InvalidArgumentError("OpenSSL does not take it as a public key");
  }
  std::shared_ptr<EVP_PKEY> key = Owned(pkey);
  EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
  const bool valid = check != nullptr && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!valid) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a valid public key");
  }
  return key;
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> RsaKey(const json::object& jwk) {
  absl::StatusOr<std::string> n = Bytes(jwk, "n");
  if (!n.ok()) return n.status();
  absl::StatusOr<std::string> e = Bytes(jwk, "e");
  if (!e.ok()) return e.status();
  Bignum bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                        static_cast<int>(n->size()), nullptr));
  Bignum bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                        static_cast<int>(e->size()), nullptr));
  const int bits = BN_num_bits(bn_n.get());
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    return absl::InvalidArgumentError(absl::StrCat("an RSA modulus of ", bits, " bits is too ",
                                                   bits < kMinRsaBits ? "short" : "long", " (",
                                                   kMinRsaBits, " to ", kMaxRsaBits, ")"));
  }
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get());
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get());
  absl::StatusOr<std::shared_ptr<EVP_PKEY>> key = FromParams("RSA", bld);
  OSSL_PARAM_BLD_free(bld);
  return key;
}

// The size of a coordinate (and of R and S) on a JOSE curve; 0 for others.
size_t CoordinateBytes(absl::string_view crv) {
  if (crv == "P-256") return 32;
  if (crv == "P-384") return 48;
  return 0;
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> EcKey(const json::object& jwk, const std::string& crv) {
  const size_t size = CoordinateBytes(crv);
  if (size == 0)
    return absl::InvalidArgumentError(absl::StrCat("curve \"", crv, "\" is not known"));
  absl::StatusOr<std::string> x = Bytes(jwk, "x");
  if (!x.ok()) return x.status();
  absl::StatusOr<std::string> y = Bytes(jwk, "y");
  if (!y.ok()) return y.status();
  if (x->size() != size || y->size() != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"x\" and \"y\" of ", crv, " are ", size, " bytes each"));
  }
  const std::string point = absl::StrCat("\x04", *x, *y);  // Uncompressed (SEC 1).
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                  crv == "P-256" ? "prime256v1" : "secp384r1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  absl::StatusOr<std::shared_ptr<EVP_PKEY>> key = FromParams("EC", bld);
  OSSL_PARAM_BLD_free(bld);
  return key;
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> Ed25519Key(const json::object& jwk) {
  absl::StatusOr<std::string> x = Bytes(jwk, "x");
  if (!x.ok()) return x.status();
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x->data()), x->size());
  if (pkey == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("\"x\" is not an Ed25519 public key");
  }
  return Owned(pkey);
}

// What an algorithm needs of a key, and how it hashes.
struct Algorithm {
  const char* kty;
  const char* crv;  // nullptr: any.
  const EVP_MD* (*md)();
  bool pss;
};

bool Lookup(absl::string_view alg, Algorithm* out) {
  static const struct {
    const char* name;
    Algorithm algorithm;
  } kAlgorithms[] = {
      {"RS256", {"RSA", nullptr, EVP_sha256, false}},
      {"RS384", {"RSA", nullptr, EVP_sha384, false}},
      {"RS512", {"RSA", nullptr, EVP_sha512, false}},
      {"PS256", {"RSA", nullptr, EVP_sha256, true}},
      {"PS384", {"RSA", nullptr, EVP_sha384, true}},
      {"PS512", {"RSA", nullptr, EVP_sha512, true}},
      {"ES256", {"EC", "P-256", EVP_sha256, false}},
      {"ES384", {"EC", "P-384", EVP_sha384, false}},
      {"EdDSA", {"OKP", "Ed25519", nullptr, false}},
  };
  for (const auto& a : kAlgorithms) {
    if (alg == a.name) {
      *out = a.algorithm;
      return true;
    }
  }
  return false;
}

// A JWS ECDSA signature (R||S) in the DER form OpenSSL verifies; empty if
// its length is not the curve's.
std::string EcdsaDer(absl::string_view raw, size_t coordinate) {
  if (raw.size() != 2 * coordinate) return "";
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()),
                        static_cast<int>(coordinate), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + coordinate),
                        static_cast<int>(coordinate), nullptr);
  ECDSA_SIG_set0(sig, r, s);
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(sig, &der);
  std::string out = length > 0 ? std::string(reinterpret_cast<char*>(der), length) : "";
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

}  // namespace

bool IsPublicKeyAlgorithm(absl::string_view alg) {
  Algorithm ignored;
  return Lookup(alg, &ignored);
}

absl::StatusOr<std::shared_ptr<const PublicKeys>> PublicKeys::Parse(absl::string_view jwks_json) {
  boost::system::error_code ec;
  json::value doc = json::parse(std::string(jwks_json), ec);
  const json::value* keys = ec || !doc.is_object() ? nullptr : doc.as_object().if_contains("keys");
  if (keys == nullptr || !keys->is_array()) {
    return absl::InvalidArgumentError("not a JWKS: expected {\"keys\": [...]}");
  }
  auto set = std::make_shared<PublicKeys>();
  size_t index = 0;
  for (const json::value& v : keys->as_array()) {
    const size_t at = index++;
    if (!v.is_object()) {
      set->skipped_.push_back(absl::StrCat("key ", at, " is not an object"));
      continue;
    }
    const json::object& jwk = v.as_object();
    Key key{Text(jwk, "kid"), Text(jwk, "kty"), Text(jwk, "crv"), Text(jwk, "alg"), nullptr};
    const std::string use = Text(jwk, "use");
    if (!use.empty() && use != "sig") continue;  // An encryption key.
    absl::StatusOr<std::shared_ptr<EVP_PKEY>> pkey;
    if (key.kty == "RSA") {
      pkey = RsaKey(jwk);
    } else if (key.kty == "EC") {
      pkey = EcKey(jwk, key.crv);
    } else if (key.kty == "OKP" && key.crv == "Ed25519") {
      pkey = Ed25519Key(jwk);
    } else {
      pkey = absl::InvalidArgumentError("a key type or curve the edge does not verify with");
    }
    if (!pkey.ok()) {
      // Left out, said why: a provider may publish keys for others beside ours.
      set->skipped_.push_back(absl::StrCat("key ", at, " (kid \"", key.kid, "\", ", key.kty,
                                           key.crv.empty() ? "" : " ", key.crv,
                                           "): ", pkey.status().message()));
      continue;
    }
    key.pkey = *std::move(pkey);
    set->keys_.push_back(std::move(key));
  }
  if (set->keys_.empty()) {
    std::string why =
        "the JWKS has no signing key the edge can use (RSA of 2048 to 16384 bits, "
        "EC P-256/P-384, Ed25519)";
    for (const std::string& s : set->skipped_) absl::StrAppend(&why, "; ", s);
    return absl::InvalidArgumentError(why);
  }
  return std::shared_ptr<const PublicKeys>(std::move(set));
}

const PublicKeys::Key* PublicKeys::Find(absl::string_view kid, absl::string_view alg) const {
  if (kid.empty()) return keys_.size() == 1 ? &keys_.front() : nullptr;
  Algorithm a;
  const bool known = Lookup(alg, &a);
  const Key* any = nullptr;
  for (const Key& key : keys_) {
    if (key.kid != kid) continue;
    // One kid on two keys of different types: the one the algorithm needs.
    if (!known || (key.kty == a.kty && (a.crv == nullptr || key.crv == a.crv))) return &key;
    if (any == nullptr) any = &key;
  }
  return any;
}

absl::Status VerifySignature(absl::string_view alg, const PublicKeys::Key& key,
                             absl::string_view input, absl::string_view signature) {
  Algorithm a;
  if (!Lookup(alg, &a)) {
    return absl::UnauthenticatedError(absl::StrCat("algorithm \"", alg, "\" is not accepted"));
  }
  if (key.kty != a.kty || (a.crv != nullptr && key.crv != a.crv) ||
      (!key.alg.empty() && key.alg != alg)) {
    return absl::UnauthenticatedError(
        absl::StrCat("key \"", key.kid, "\" (", key.kty, key.crv.empty() ? "" : " ", key.crv,
                     key.alg.empty() ? "" : ", for ", key.alg, ") does not verify ", alg));
  }
  std::string der;
  if (key.kty == "EC") {
    der = EcdsaDer(signature, CoordinateBytes(key.crv));
    if (der.empty()) return absl::UnauthenticatedError("bad signature (not R||S of the curve)");
    signature = der;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = EVP_DigestVerifyInit(ctx, &pctx, a.md == nullptr ? nullptr : a.md(), nullptr,
                                 key.pkey.get()) == 1;
  if (ok && a.pss) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, a.md()) == 1;
  }
  ok = ok && EVP_DigestVerify(
                 ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                 reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    ERR_clear_error();  // OpenSSL's reasons stay out of other code's way.
    return absl::UnauthenticatedError("bad signature");
  }
  return absl::OkStatus();
}

}  // namespace edge
