// The identity of a peer's client certificate, for the Attach stream's check
// that an edge announces only an edge id its certificate names.
//
//   std::optional<std::vector<std::string>> names = CertificateDnsNames(*context);
//   if (!names) ...  // no client certificate
//   if (!EdgeIdAllowed(hello.edge_id(), *names)) ...  // PERMISSION_DENIED
//
// With --tls_client_ca the TLS layer has already verified a certificate the
// client presented (chain to that CA, validity dates), so what is left is
// which names it carries.
//
// Threading: pure functions; any thread (a call's own ServerContext). Lifetime:
// nothing kept.
#ifndef CHAT_GROUPSVC_SECURITY_PEER_IDENTITY_H_
#define CHAT_GROUPSVC_SECURITY_PEER_IDENTITY_H_

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace groupsvc {

// True if the call came over TLS (not the plaintext health port).
bool OverTls(const grpc::ServerContextBase& context);

// The DNS names (subjectAltName DNS entries) of the peer's certificate;
// nullopt when the peer presented none (or the connection is not TLS).
std::optional<std::vector<std::string>> CertificateDnsNames(const grpc::ServerContextBase& context);

// True if `edge_id` is one of `dns_names`: equal (case-sensitively, as edge
// ids are), or, for a wildcard name "*.SUFFIX" as RFC 6125 reads it,
// one non-empty label without dots followed by ".SUFFIX" ("*.edge.chat"
// admits "a.edge.chat", not "edge.chat" nor "a.b.edge.chat"). A wildcard
// needs at least two labels after it ("*.chat" admits nothing).
bool EdgeIdAllowed(absl::string_view edge_id, const std::vector<std::string>& dns_names);

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SECURITY_PEER_IDENTITY_H_
