// Certificates made at test time with OpenSSL's C API (no shell-out): a CA
// and the certificates it issues, PEM-encoded, with the names, usages and
// validity a test asks for (an expired one, one from another CA, ...).
//
//   TestCa ca("test CA");
//   KeyAndCert server = ca.Issue({.common_name = "groupsvc", .dns_names = {"localhost"},
//                                 .ip_addresses = {"127.0.0.1"}});
//   KeyAndCert edge = ca.Issue({.common_name = "edge-a", .dns_names = {"edge-a"}});
//   WriteFileAtomically(dir + "/tls.crt", server.cert_pem);
//
// EC P-256 keys, SHA-256 signatures. Thread-compatible.
#ifndef CHAT_TESTS_SUPPORT_TEST_CERTS_H_
#define CHAT_TESTS_SUPPORT_TEST_CERTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace chat::testing {

struct CertOptions {
  std::string common_name = "";
  std::vector<std::string> dns_names = {};
  std::vector<std::string> ip_addresses = {};  // Dotted IPv4.
  // Validity, from now: [now + valid_from, now + valid_until].
  absl::Duration valid_from = -absl::Hours(1);
  absl::Duration valid_until = absl::Hours(24);
  // Extended key usages.
  bool server_auth = true;
  bool client_auth = true;
};

struct KeyAndCert {
  std::string key_pem;   // PKCS#8 "PRIVATE KEY".
  std::string cert_pem;  // The leaf only (the CA is separate).
};

class TestCa {
 public:
  explicit TestCa(const std::string& common_name);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& cert_pem() const { return cert_pem_; }
  KeyAndCert Issue(const CertOptions& options) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string cert_pem_;
};

// Replaces `path` at once (a temporary file renamed over it), as a
// Kubernetes Secret update does. Aborts the test binary on failure.
void WriteFileAtomically(const std::string& path, const std::string& contents);
// A new empty directory under $TMPDIR (or /tmp).
std::string MakeTempDir(const std::string& prefix);

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_TEST_CERTS_H_
