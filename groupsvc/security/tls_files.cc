#include "groupsvc/security/tls_files.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace groupsvc {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

absl::StatusOr<Bio> Open(const std::string& path) {
  Bio bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  return bio;
}

absl::StatusOr<Cert> FirstCertificate(const std::string& path) {
  absl::StatusOr<Bio> bio = Open(path);
  if (!bio.ok()) return bio.status();
  Cert cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no PEM certificate (", OpenSslError(), ")"));
  }
  return cert;
}

std::string Summary(X509* cert) {
  std::vector<std::string> names;
  if (auto* sans = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type == GEN_DNS) {
        const ASN1_STRING* s = name->d.dNSName;
        names.push_back(absl::StrCat(
            "DNS:", std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                ASN1_STRING_length(s))));
      } else if (name->type == GEN_IPADD && ASN1_STRING_length(name->d.iPAddress) == 4) {
        const unsigned char* ip = ASN1_STRING_get0_data(name->d.iPAddress);
        names.push_back(absl::StrCat("IP:", ip[0], ".", ip[1], ".", ip[2], ".", ip[3]));
      } else if (name->type == GEN_IPADD) {
        names.push_back("IP:(v6)");
      }
    }
    GENERAL_NAMES_free(sans);
  }
  std::string not_after = "?";
  Bio out(BIO_new(BIO_s_mem()));
  if (out != nullptr && ASN1_TIME_print(out.get(), X509_get0_notAfter(cert)) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    not_after.assign(data, n);
  }
  return absl::StrCat("names=", absl::StrJoin(names, ","), " not_after=", not_after);
}

}  // namespace

absl::StatusOr<std::string> CheckKeyPair(const std::string& cert_path,
                                         const std::string& key_path) {
  absl::StatusOr<Cert> cert = FirstCertificate(cert_path);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<Bio> bio = Open(key_path);
  if (!bio.ok()) return bio.status();
  Key key(PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_path, ": no PEM private key (", OpenSslError(), ")"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(key_path, " is not the private key of the certificate in ", cert_path));
  }
  return Summary(cert->get());
}

absl::Status CheckCertificates(const std::string& path) { return FirstCertificate(path).status(); }

absl::StatusOr<std::string> ReadCertificates(const std::string& path) {
  if (absl::Status s = CheckCertificates(path); !s.ok()) return s;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  }
  return contents.str();
}

}  // namespace groupsvc
