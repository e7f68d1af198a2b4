#include "groupsvc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "groupsvc/security/tls_files.h"
#include "shared/log.h"

namespace groupsvc {
namespace {

int Millis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

AttachOptions WithShards(AttachOptions attach, const ShardMap* shards) {
  attach.shards = shards;
  return attach;
}

// The credentials a shard forwards to the others with: TLS when it speaks
// TLS itself, trusting --shard_tls_ca (or --tls_client_ca).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PeerCredentials(
    const ServerOptions& options) {
  if (options.tls.cert_file.empty()) return grpc::InsecureChannelCredentials();
  const std::string& ca =
      options.shard_tls_ca_file.empty() ? options.tls.client_ca_file : options.shard_tls_ca_file;
  if (ca.empty()) {
    return absl::InvalidArgumentError(
        "sharded groupsvc with --tls_cert forwards calls to the other shards over TLS: set "
        "--shard_tls_ca (or --tls_client_ca) to the CA that signs their certificates");
  }
  absl::StatusOr<std::string> pem = ReadCertificates(ca);
  if (!pem.ok()) return pem.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *std::move(pem);
  return grpc::SslCredentials(ssl);
}

}  // namespace

GroupServer::GroupServer(ServerOptions options, const chat::Clock* clock,
                         std::unique_ptr<ApiGuard> guard,
                         std::shared_ptr<grpc::ChannelCredentials> peer_credentials)
    : options_(std::move(options)),
      clock_(clock),
      registry_(options_.registry, clock_),
      guard_(std::move(guard)),
      forwarder_(peer_credentials == nullptr
                     ? nullptr
                     : std::make_unique<Forwarder>(&options_.shards, peer_credentials)),
      service_(&registry_, WithShards(options_.attach, &options_.shards), clock_, guard_.get(),
               /*require_client_certificate=*/!options_.tls.client_ca_file.empty(),
               /*api_needs_tls=*/!options_.tls.cert_file.empty() && !options_.health_listen.empty(),
               forwarder_.get()) {}

GroupServer::~GroupServer() {
  Shutdown(absl::ZeroDuration());
  Wait();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GroupServer::Credentials() {
  const TlsOptions& tls = options_.tls;
  if (tls.cert_file.empty() && tls.key_file.empty()) {
    if (!tls.client_ca_file.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  // gRPC's watcher reads the files again every reload_interval, so a renewed
  // certificate (a Secret or cert-manager rewriting them) serves new
  // handshakes without a restart. It must be given whole: Kubernetes swaps a
  // Secret's files at once.
  certificates_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.client_ca_file,
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(tls.reload_interval))));
  grpc::experimental::TlsServerCredentialsOptions credentials(certificates_);
  credentials.watch_identity_key_cert_pairs();
  if (tls.client_ca_file.empty()) {
    credentials.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    credentials.watch_root_certs();
    // Asked for and verified when presented, not required: unary callers
    // (grpcurl with a token) have none. Attach requires one (GroupService).
    credentials.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(credentials);
}

void GroupServer::LogSecurity(const std::string& certificate) const {
  const bool tls = !options_.tls.cert_file.empty();
  const bool mtls = !options_.tls.client_ca_file.empty();
  chat::LogEvent("security",
                 {{"tls", tls ? "on" : "off"},
                  {"certificate", tls ? certificate : ""},
                  {"attach", mtls ? "client_certificate" : "open"},
                  {"api", guard_->open() ? "open" : "tokens"},
                  {"tokens", absl::StrCat(guard_->token_count())},
                  {"api_rate", absl::StrCat(options_.api.rate)},
                  {"caller_queued_bytes", absl::StrCat(options_.api.caller_queued_bytes)}});
  if (!tls) {
    chat::LogEvent(
        "security_warning",
        {{"issue", "plaintext"},
         {"detail", absl::StrCat("gRPC on ", options_.listen,
                                 " is plaintext: whoever reaches the port can read the traffic "
                                 "and attach as any edge; set --tls_cert, --tls_key and "
                                 "--tls_client_ca")}});
  } else if (!mtls) {
    chat::LogEvent("security_warning",
                   {{"issue", "attach_open"},
                    {"detail", "no --tls_client_ca: any TLS client may attach as any edge id"}});
  }
  if (guard_->open()) {
    chat::LogEvent("security_warning",
                   {{"issue", "api_open"},
                    {"detail",
                     "no --api_tokens_file: the unary API (GroupSend, GroupAdd, Flush, ...) is "
                     "open to whoever reaches the port"}});
  }
}

absl::StatusOr<std::unique_ptr<GroupServer>> GroupServer::Start(ServerOptions options,
                                                                const chat::Clock* clock) {
  std::string certificate;
  if (!options.tls.cert_file.empty() && !options.tls.key_file.empty()) {
    absl::StatusOr<std::string> checked = CheckKeyPair(options.tls.cert_file, options.tls.key_file);
    if (!checked.ok()) return checked.status();
    certificate = *std::move(checked);
  }
  if (!options.tls.client_ca_file.empty()) {
    if (absl::Status s = CheckCertificates(options.tls.client_ca_file); !s.ok()) return s;
  }
  absl::StatusOr<std::unique_ptr<ApiGuard>> guard = ApiGuard::Create(options.api);
  if (!guard.ok()) return guard.status();
  std::shared_ptr<grpc::ChannelCredentials> peers;
  if (options.shards.sharded()) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        PeerCredentials(options);
    if (!credentials.ok()) return credentials.status();
    peers = *std::move(credentials);
  }
  std::unique_ptr<GroupServer> s(new GroupServer(std::move(options),
                                                 clock ? clock : chat::RealClock::Default(),
                                                 *std::move(guard), std::move(peers)));
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = s->Credentials();
  if (!credentials.ok()) return credentials.status();
  // Reflection is gRPC's sync service: beside async queues its own queue does
  // not poll (bench/README.md, "One polling thread"), so it takes nothing from the loops.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(s->options_.listen, *credentials, &s->port_);
  if (!s->options_.health_listen.empty()) {
    builder.AddListeningPort(s->options_.health_listen, grpc::InsecureServerCredentials(),
                             &s->health_port_);
  }
  builder.RegisterService(s->service_.service());
  builder.RegisterService(s->health_.service());
  for (int i = 0; i < std::max(1, s->options_.rpc_threads); ++i) {
    s->loops_.push_back(std::make_unique<CompletionLoop>(builder.AddCompletionQueue()));
  }
  // Room for a batch of commands around the largest event; the registry refuses
  // an oversized event itself, with a message that says so.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::max<size_t>(4 << 20, 2 * s->options_.registry.max_event_bytes + (64 << 10))));
  // A second server on a busy port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(s->options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(s->options_.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0 ||
      (!s->options_.health_listen.empty() && s->health_port_ == 0)) {
    const bool health = s->server_ != nullptr && s->port_ != 0;
    if (s->server_ != nullptr) s->server_->Shutdown();
    for (auto& loop : s->loops_) loop->Shutdown();
    s->server_.reset();
    // gRPC does not say which port failed when it cannot build the server.
    std::string why = absl::StrCat("cannot listen on ", s->options_.listen);
    if (health) {
      why = absl::StrCat("cannot serve health on ", s->options_.health_listen);
    } else if (!s->options_.health_listen.empty()) {
      absl::StrAppend(&why, " or serve health on ", s->options_.health_listen);
    }
    return absl::UnavailableError(why);
  }
  for (auto& loop : s->loops_) {
    s->service_.Listen(loop.get());
    s->health_.Listen(loop.get());
    loop->Start();
  }
  if (!s->options_.metrics_listen.empty()) {
    try {
      s->exposer_ = std::make_unique<prometheus::Exposer>(s->options_.metrics_listen);
    } catch (const std::exception& e) {
      s->Shutdown(absl::ZeroDuration());
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", s->options_.metrics_listen, ": ", e.what()));
    }
    s->collector_ =
        std::make_shared<RegistryCollector>(&s->registry_, &s->service_.streams(), s->guard_.get());
    s->exposer_->RegisterCollectable(s->collector_);
    std::vector<int> ports = s->exposer_->GetListeningPorts();
    s->metrics_port_ = ports.empty() ? 0 : ports.front();
  }
  s->LogSecurity(certificate);
  GroupRegistry* registry = &s->registry_;
  CompletionLoop* first = s->loops_.front().get();
  s->tickers_.push_back(
      Ticker::Start(first, s->options_.sweep_interval, [registry] { registry->Sweep(); }));
  // Presence leaves are due at debounce granularity, finer than the sweep.
  s->tickers_.push_back(
      Ticker::Start(first, absl::Milliseconds(100), [registry] { registry->AnnouncePresence(); }));
  return s;
}

void GroupServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  const absl::Time deadline = absl::Now() + grace;
  health_.SetServing(false);
  service_.Drain(grace);
  service_.streams().WaitEmpty(deadline);
  chat::LogEvent("streams_drained", {{"left", absl::StrCat(service_.attached_streams())}});
  health_.Shutdown();
  for (auto& ticker : tickers_) ticker->Stop();
  tickers_.clear();  // The loops wait for every call to go.
  // Our streams are gone; what is left are short unary calls and waiting
  // Receives. gRPC would also wait for idle clients to drop their connections
  // after its GOAWAY, which they need not do, so give in-flight calls at most a
  // second before they are cancelled.
  server_->Shutdown(absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(1))));
  for (auto& loop : loops_) loop->Shutdown();
  chat::LogEvent("server_shutdown");
  absl::MutexLock lock(&done_mu_);
  done_ = true;
}

void GroupServer::Wait() {
  if (server_ == nullptr) return;
  absl::MutexLock lock(&done_mu_);
  done_mu_.Await(absl::Condition(&done_));
}

}  // namespace groupsvc
