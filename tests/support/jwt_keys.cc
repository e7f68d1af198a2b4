#include "tests/support/jwt_keys.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "edge/auth/token.h"

namespace chat::testing {
namespace {

const EVP_MD* Digest(const std::string& alg) {
  if (alg == "EdDSA") return nullptr;
  if (alg.substr(2) == "384") return EVP_sha384();
  if (alg.substr(2) == "512") return EVP_sha512();
  return EVP_sha256();
}

std::string BnParam(EVP_PKEY* pkey, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) throw std::runtime_error(name);
  std::string bytes(pad > 0 ? pad : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  BN_free(bn);
  return edge::Base64UrlEncode(bytes);
}

}  // namespace

TestKey TestKey::Make(const std::string& alg, const std::string& kid) {
  TestKey key;
  key.alg_ = alg;
  key.kid_ = kid;
  EVP_PKEY* pkey = nullptr;
  if (alg[0] == 'R' || alg[0] == 'P') {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  } else if (alg == "ES256") {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  } else if (alg == "ES384") {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  } else if (alg == "EdDSA") {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  }
  if (pkey == nullptr) throw std::runtime_error("cannot make a key for " + alg);
  key.pkey_ = std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free);
  return key;
}

std::string TestKey::Jwk(bool with_alg) const {
  std::string members;
  EVP_PKEY* pkey = pkey_.get();
  if (alg_[0] == 'R' || alg_[0] == 'P') {
    members = absl::StrCat(R"("kty":"RSA","n":")", BnParam(pkey, OSSL_PKEY_PARAM_RSA_N),
                           R"(","e":")", BnParam(pkey, OSSL_PKEY_PARAM_RSA_E), R"(")");
  } else if (alg_[0] == 'E' && alg_ != "EdDSA") {
    const int size = alg_ == "ES256" ? 32 : 48;
    members = absl::StrCat(R"("kty":"EC","crv":")", alg_ == "ES256" ? "P-256" : "P-384",
                           R"(","x":")", BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_X, size),
                           R"(","y":")", BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, size), R"(")");
  } else {
    std::string raw(32, '\0');
    size_t length = raw.size();
    EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &length);
    members =
        absl::StrCat(R"("kty":"OKP","crv":"Ed25519","x":")", edge::Base64UrlEncode(raw), R"(")");
  }
  return absl::StrCat("{", members, R"(,"use":"sig","kid":")", kid_, R"(")",
                      with_alg ? absl::StrCat(R"(,"alg":")", alg_, R"(")") : "", "}");
}

std::string TestKey::Sign(const std::string& claims_json, const std::string& header_json) const {
  const std::string header =
      header_json.empty()
          ? absl::StrCat(R"({"alg":")", alg_, R"(","typ":"JWT","kid":")", kid_, R"("})")
          : header_json;
  const std::string input =
      absl::StrCat(edge::Base64UrlEncode(header), ".", edge::Base64UrlEncode(claims_json));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EVP_DigestSignInit(ctx, &pctx, Digest(alg_), nullptr, pkey_.get());
  if (alg_[0] == 'P') {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  size_t length = 0;
  EVP_DigestSign(ctx, nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    throw std::runtime_error("cannot sign with " + alg_);
  }
  EVP_MD_CTX_free(ctx);
  signature.resize(length);
  if (alg_ == "ES256" || alg_ == "ES384") {  // DER to the JWS form, R||S.
    const int size = alg_ == "ES256" ? 32 : 48;
    const unsigned char* der = reinterpret_cast<const unsigned char*>(signature.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size()));
    std::string raw(2 * size, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), size);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + size, size);
    ECDSA_SIG_free(sig);
    signature = raw;
  }
  return absl::StrCat(input, ".", edge::Base64UrlEncode(signature));
}

std::string TestKey::PublicPem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, pkey_.get());
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  return pem;
}

std::string Jwks(const std::vector<std::string>& jwks) {
  return absl::StrCat(R"({"keys":[)", absl::StrJoin(jwks, ","), "]}");
}

}  // namespace chat::testing
