// Checks of the PEM files groupsvc is given (--tls_cert, --tls_key,
// --tls_client_ca) before it listens, so that a wrong path or a key that does
// not belong to the certificate stops the start with a message that says so,
// instead of every handshake failing later. gRPC's file watcher reads the
// files itself (and again when they change); these checks only read them once.
//
//   if (absl::Status s = CheckKeyPair(cert, key); !s.ok()) ...
//
// Threading: pure functions, called once on the main thread before the
// server starts. Lifetime: nothing kept.
#ifndef CHAT_GROUPSVC_SECURITY_TLS_FILES_H_
#define CHAT_GROUPSVC_SECURITY_TLS_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace groupsvc {

// The certificate chain in `cert_path` parses and its first certificate
// belongs to the private key in `key_path`. Returns a one-line summary of the
// leaf (subject names and expiry) for the log.
absl::StatusOr<std::string> CheckKeyPair(const std::string& cert_path, const std::string& key_path);
// `path` holds at least one PEM certificate (a CA bundle).
absl::Status CheckCertificates(const std::string& path);
// The contents of a CA bundle that CheckCertificates accepts.
absl::StatusOr<std::string> ReadCertificates(const std::string& path);

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SECURITY_TLS_FILES_H_
