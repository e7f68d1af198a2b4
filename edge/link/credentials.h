// The gRPC channel set-up of the edge's links to groupsvc: credentials
// (plaintext, TLS, or mutual TLS) and channel arguments (keepalive, the
// reconnect backoff the calls wait for).
//
// With `ca_file` the channels speak TLS and check that each shard's
// certificate chains to that CA and names the host of its target (or
// `server_name`); with `cert_file`/`key_file` they present the edge's client
// certificate (mutual TLS: groupsvc admits the stream only if the certificate
// names the edge id). gRPC's file watcher re-reads the three files every
// `reload_interval`, so renewed certificates are used by the next connection
// without a restart.
//
// Threading: MakeChannelSetup is a pure function, called once per layer.
// Lifetime: the returned setup is kept by the GrpcLayer for its channels' life.
#ifndef CHAT_EDGE_LINK_CREDENTIALS_H_
#define CHAT_EDGE_LINK_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace edge {

struct GrpcTlsOptions {
  // PEM CA bundle that signs groupsvc's certificate; empty: plaintext.
  std::string ca_file;
  // The edge's client certificate chain and key, for mutual TLS; both or neither.
  std::string cert_file;
  std::string key_file;
  // The name groupsvc's certificate must carry; empty: the host in `target`.
  std::string server_name;
  absl::Duration reload_interval = absl::Seconds(10);
};

struct ChannelSetup {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments args;
  // Kept for the channels' life (gRPC also holds a reference); null without TLS.
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> certificates;
};

// `min_backoff`/`max_backoff`: the channel's own reconnects, which a call
// waits for (wait_for_ready); with gRPC's jitter of 20% a call is back within
// max_backoff of groupsvc being reachable again, however long it was away.
ChannelSetup MakeChannelSetup(const GrpcTlsOptions& tls, absl::Duration min_backoff,
                              absl::Duration max_backoff);

}  // namespace edge

#endif  // CHAT_EDGE_LINK_CREDENTIALS_H_
