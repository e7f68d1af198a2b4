#include "groupsvc/security/peer_identity.h"

#include <grpc/grpc_security_constants.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace groupsvc {

bool OverTls(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return false;
  for (const grpc::string_ref& type :
       auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
    if (type == GRPC_SSL_TRANSPORT_SECURITY_TYPE || type == GRPC_TLS_TRANSPORT_SECURITY_TYPE) {
      return true;
    }
  }
  return false;
}

std::optional<std::vector<std::string>> CertificateDnsNames(
    const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME).empty()) {
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (const grpc::string_ref& name : auth->FindPropertyValues(GRPC_PEER_DNS_PROPERTY_NAME)) {
    names.emplace_back(name.data(), name.size());
  }
  return names;
}

bool EdgeIdAllowed(absl::string_view edge_id, const std::vector<std::string>& dns_names) {
  if (edge_id.empty()) return false;
  for (absl::string_view name : dns_names) {
    if (name == edge_id) return true;
    if (!absl::StartsWith(name, "*.")) continue;
    const absl::string_view suffix = name.substr(1);               // ".edge.chat"
    if (suffix.find('.', 1) == absl::string_view::npos) continue;  // "*.chat": too broad
    if (suffix.find('*') != absl::string_view::npos) continue;
    if (edge_id.size() <= suffix.size() || !absl::EndsWith(edge_id, suffix)) continue;
    const absl::string_view label = edge_id.substr(0, edge_id.size() - suffix.size());
    if (!label.empty() && label.find('.') == absl::string_view::npos) return true;
  }
  return false;
}

}  // namespace groupsvc
