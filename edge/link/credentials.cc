#include "edge/link/credentials.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>

namespace edge {

ChannelSetup MakeChannelSetup(const GrpcTlsOptions& tls, absl::Duration min_backoff,
                              absl::Duration max_backoff) {
  ChannelSetup setup;
  grpc::ChannelArguments& args = setup.args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(min_backoff)));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(min_backoff)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(max_backoff) * 5 / 6));
  args.SetMaxReceiveMessageSize(64 << 20);
  if (tls.ca_file.empty()) {
    setup.credentials = grpc::InsecureChannelCredentials();
    return setup;
  }
  setup.certificates = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.ca_file,
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(tls.reload_interval))));
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(setup.certificates);
  options.watch_root_certs();
  if (!tls.cert_file.empty()) options.watch_identity_key_cert_pairs();
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  setup.credentials = grpc::experimental::TlsCredentials(options);
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return setup;
}

}  // namespace edge
