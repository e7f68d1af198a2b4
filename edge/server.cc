#include "edge/server.h"

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <fstream>
#include <optional>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "edge/channels/memory_layer.h"
#include "edge/chat/chat_consumer.h"
#include "edge/chat/pages.h"
#include "edge/link/grpc_layer.h"
#include "shared/log.h"
#include "shared/names.h"

namespace edge {

namespace net = boost::asio;

namespace {

absl::StatusOr<net::ip::tcp::endpoint> ParseEndpoint(const std::string& hostport) {
  const size_t colon = hostport.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(hostport.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("expected HOST:PORT, got \"", hostport, "\""));
  }
  std::string host = hostport.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto address = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("not an IP address: \"", host, "\""));
  return net::ip::tcp::endpoint(address, static_cast<unsigned short>(port));
}

// The host name and a random suffix: two edges on one host (or two
// containers with one host name) never share an id by default.
std::string DefaultEdgeId() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  std::string out;
  for (char c : std::string(name)) {
    out.push_back((isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '-');
  }
  if (out.empty()) out = "edge";
  return absl::StrCat(out, "-", chat::RandomTag(6));
}

// Descriptors kept back from client connections: groupsvc's channel, the
// listeners, gRPC's and Asio's own, logs.
constexpr size_t kReservedDescriptors = 64;

// Raises the soft open-file limit to the hard one and returns how many client
// connections fit under it.
size_t ConnectionsThatFit(size_t wanted) {
  struct rlimit limit = {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  if (limit.rlim_cur < limit.rlim_max) {
    struct rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return wanted;
  const size_t fit = limit.rlim_cur > 2 * kReservedDescriptors
                         ? static_cast<size_t>(limit.rlim_cur) - kReservedDescriptors
                         : static_cast<size_t>(limit.rlim_cur) / 2;
  if (fit < wanted) {
    chat::LogEvent("connections_capped", {{"wanted", absl::StrCat(wanted)},
                                          {"max_connections", absl::StrCat(fit)},
                                          {"open_file_limit", absl::StrCat(limit.rlim_cur)}});
  }
  return std::min(wanted, fit);
}

}  // namespace

absl::StatusOr<std::string> ReadSecret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--jwt_secret_file: cannot read ", path));
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("--jwt_secret_file: ", path, " holds ", secret.size(),
                     " bytes; an HS256 secret needs at least 32 (e.g. openssl rand -hex 32)"));
  }
  return secret;
}

namespace {

// The first bytes of `path` hold a PEM block of `kind` ("CERTIFICATE",
// "PRIVATE KEY"); gRPC parses the files itself, and reads them again when
// they change.
absl::Status CheckPemFile(const std::string& flag, const std::string& path,
                          absl::string_view kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::string text(1 << 20, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.find("-----BEGIN ") == std::string::npos ||
      text.find(absl::StrCat(kind, "-----")) == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " holds no PEM ", kind));
  }
  return absl::OkStatus();
}

absl::Status CheckGroupsvcTls(const GrpcTlsOptions& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError("--groupsvc_tls_cert and --groupsvc_tls_key go together");
  }
  if (tls.ca_file.empty()) {
    if (!tls.cert_file.empty() || !tls.server_name.empty()) {
      return absl::InvalidArgumentError(
          "--groupsvc_tls_cert, --groupsvc_tls_key and --groupsvc_tls_server_name need "
          "--groupsvc_tls_ca (the CA that signs groupsvc's certificate)");
    }
    return absl::OkStatus();
  }
  if (absl::Status s = CheckPemFile("--groupsvc_tls_ca", tls.ca_file, "CERTIFICATE"); !s.ok()) {
    return s;
  }
  if (tls.cert_file.empty()) return absl::OkStatus();
  if (absl::Status s = CheckPemFile("--groupsvc_tls_cert", tls.cert_file, "CERTIFICATE"); !s.ok()) {
    return s;
  }
  return CheckPemFile("--groupsvc_tls_key", tls.key_file, "PRIVATE KEY");
}

}  // namespace

EdgeServer::EdgeServer(EdgeServerOptions options)
    : options_(std::move(options)),
      context_(std::make_shared<EdgeContext>()),
      pool_(std::make_shared<IoPool>(options_.threads)) {
  write_check_.emplace(pool_->context(0));
}

absl::StatusOr<std::unique_ptr<EdgeServer>> EdgeServer::Start(EdgeServerOptions options) {
  if (options.edge_id.empty()) options.edge_id = DefaultEdgeId();
  if (absl::Status s = chat::ValidateGroupName(options.edge_id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--edge_id: ", s.message()));
  }
  absl::StatusOr<net::ip::tcp::endpoint> endpoint = ParseEndpoint(options.listen);
  if (!endpoint.ok()) return endpoint.status();
  std::optional<net::ip::tcp::endpoint> metrics_endpoint;
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<net::ip::tcp::endpoint> e = ParseEndpoint(options.metrics_listen);
    if (!e.ok())
      return absl::InvalidArgumentError(absl::StrCat("--metrics_listen: ", e.status().message()));
    metrics_endpoint = *e;
  }

  if (!options.groupsvc.empty()) {
    if (absl::Status s = CheckGroupsvcTls(options.groupsvc_tls); !s.ok()) return s;
  }
  std::shared_ptr<const TokenVerifier> verifier;
  TokenOptions tokens{"", nullptr, options.jwt_issuer, options.jwt_audience};
  if (!options.jwt_secret_file.empty()) {
    absl::StatusOr<std::string> secret = ReadSecret(options.jwt_secret_file);
    if (!secret.ok()) return secret.status();
    tokens.secret = *std::move(secret);
  }
  if (!options.jwks_file.empty() && !options.jwks_url.empty()) {
    return absl::InvalidArgumentError("--jwks_file and --jwks_url: give one of them");
  }
  if (!options.jwks_file.empty()) {
    absl::StatusOr<std::unique_ptr<JwksFile>> keys =
        JwksFile::Open(options.jwks_file, chat::RealClock::Default());
    if (!keys.ok()) return keys.status();
    tokens.keys = *std::move(keys);
  } else if (!options.jwks_url.empty()) {
    JwksUrlOptions fetch;
    fetch.url = options.jwks_url;
    fetch.ca_file = options.jwks_ca_file;
    absl::StatusOr<std::unique_ptr<JwksUrl>> keys = JwksUrl::Start(std::move(fetch));
    if (!keys.ok()) return keys.status();
    tokens.keys = *std::move(keys);
  }
  if (tokens.keys != nullptr && tokens.audience.empty()) {
    chat::LogEvent("security_warning",
                   {{"issue", "jwt_audience"},
                    {"detail",
                     "--jwks_file/--jwks_url without --jwt_audience: a token the identity provider "
                     "signed for any other application is accepted too; set --jwt_audience (and "
                     "--jwt_issuer)"}});
  }
  if (!tokens.secret.empty() || tokens.keys != nullptr) {
    verifier = std::make_shared<TokenVerifier>(std::move(tokens), chat::RealClock::Default());
  } else if (options.edge.auth == AuthMode::kRequired) {
    return absl::InvalidArgumentError(
        "--auth=required needs --jwt_secret_file (the HS256 secret) or --jwks_file or --jwks_url "
        "(the identity provider's public keys)");
  }
  if (options.dev_token_issuer && (verifier == nullptr || !verifier->can_mint())) {
    return absl::InvalidArgumentError(
        "--dev_token_issuer needs --jwt_secret_file (the secret that signs its tokens)");
  }

  std::unique_ptr<EdgeServer> s(new EdgeServer(std::move(options)));
  EdgeContext& context = *s->context_;
  context.verifier = std::move(verifier);
  context.dev_token_issuer = s->options_.dev_token_issuer;
  if (context.dev_token_issuer) {
    chat::LogEvent("security_warning",
                   {{"issue", "dev_token_issuer"},
                    {"detail",
                     "POST /auth/token gives anyone who reaches the pages a token for "
                     "any name; for the local run only"}});
  }
  if (s->options_.groupsvc.empty()) {
    context.layer = std::make_shared<MemoryLayer>(absl::StrCat(s->options_.edge_id, "!"), s->pool_);
  } else {
    auto grpc_layer = std::make_shared<GrpcLayer>(
        GrpcLayerOptions{.targets = absl::StrSplit(s->options_.groupsvc, ',', absl::SkipEmpty()),
                         .edge_id = s->options_.edge_id,
                         .loops = s->pool_,
                         .tls = s->options_.groupsvc_tls});
    const GrpcTlsOptions& tls = s->options_.groupsvc_tls;
    if (tls.ca_file.empty()) {
      chat::LogEvent("security_warning",
                     {{"issue", "plaintext"},
                      {"detail", absl::StrCat("the link to groupsvc (", s->options_.groupsvc,
                                              ") is plaintext; set --groupsvc_tls_ca, "
                                              "--groupsvc_tls_cert and --groupsvc_tls_key")}});
    } else {
      chat::LogEvent("layer_tls", {{"ca", tls.ca_file},
                                   {"cert", tls.cert_file},
                                   {"server_name", tls.server_name},
                                   {"client_certificate", tls.cert_file.empty() ? "no" : "yes"}});
    }
    grpc_layer->Start();
    context.layer = std::move(grpc_layer);
  }
  context.router = std::make_shared<Router>();
  context.router->Add(
      "/ws/chat/{room_name}/",
      [chat = ChatOptions{s->options_.join_history, s->options_.edge.max_queue_bytes / 2,
                          s->options_.edge.max_queue_frames}] {
        return std::make_unique<ChatConsumer>(chat);
      },
      [](const Router::Captures& c) {
        return chat::ValidateGroupName(ChatConsumer::GroupFor(c.at("room_name"))).ok();
      });
  context.router->Add("/ws/echo/", [] { return std::make_unique<EchoConsumer>(); });
  context.pages = ChatPages;
  std::weak_ptr<Layer> layer = context.layer;
  context.metrics = std::make_shared<EdgeMetrics>(
      [layer] {
        auto l = layer.lock();
        return l != nullptr && l->ready();
      },
      [layer] {
        auto l = layer.lock();
        return l == nullptr ? size_t{0} : l->local_groups();
      });
  context.metrics->SetShardStates([layer] {
    std::vector<std::pair<std::string, bool>> states;
    if (auto l = layer.lock()) {
      for (const LinkState& link : l->links()) states.emplace_back(link.target, link.up);
    }
    return states;
  });
  context.admission = std::make_shared<Admission>(
      Admission::Limits{.max_connections = ConnectionsThatFit(s->options_.max_connections),
                        .max_per_address = s->options_.max_connections_per_ip});
  context.metrics->SetConnectionCounts([admission = std::weak_ptr<Admission>(context.admission)] {
    auto a = admission.lock();
    if (a == nullptr) return std::pair<size_t, size_t>{0, 0};
    Admission::Counts c = a->counts();
    return std::pair<size_t, size_t>{c.connections, c.pending};
  });
  context.options = s->options_.edge;

  absl::StatusOr<std::shared_ptr<Listener>> listener =
      Listener::Bind(s->pool_, *endpoint, s->context_, Listener::Serves::kEverything);
  if (!listener.ok()) return listener.status();
  s->listener_ = *std::move(listener);
  if (metrics_endpoint.has_value()) {
    absl::StatusOr<std::shared_ptr<Listener>> metrics =
        Listener::Bind(s->pool_, *metrics_endpoint, s->context_, Listener::Serves::kMetrics);
    if (!metrics.ok()) {
      return absl::UnavailableError(absl::StrCat("--metrics_listen: ", metrics.status().message()));
    }
    s->metrics_listener_ = *std::move(metrics);
    s->metrics_listener_->Run();
  }
  s->listener_->Run();
  s->ScheduleWriteCheck();
  s->pool_->Start();
  return s;
}

void EdgeServer::ScheduleWriteCheck() {
  const auto timeout = absl::ToChronoNanoseconds(context_->options.write_timeout);
  if (timeout <= std::chrono::nanoseconds::zero()) return;
  write_check_->expires_after(timeout / 4);
  write_check_->async_wait([this, timeout](boost::system::error_code ec) {
    if (ec) return;
    context_->sessions.CloseStalledWriters(std::chrono::steady_clock::now() - timeout);
    context_->sessions.CloseExpired(absl::Now());
    ScheduleWriteCheck();
  });
}

EdgeServer::~EdgeServer() { Shutdown(absl::ZeroDuration()); }

void EdgeServer::Shutdown(absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + grace;
  context_->shutting_down = true;
  if (listener_) listener_->Stop();
  if (metrics_listener_) metrics_listener_->Stop();
  context_->sessions.CloseAll(kCloseGoingAway);
  // Every client is told (1001) even with no grace: its close frame is handed
  // to the kernel, unless the client has stopped reading (bounded).
  context_->sessions.AwaitClosesSent(std::max(deadline, start + absl::Seconds(1)));
  context_->sessions.AwaitEmpty(deadline);
  // The closed sessions' group_discards, confirmed by groupsvc (at most a
  // second, within the grace), so their rooms do not wait for edge loss.
  context_->layer->Drain(std::min(deadline, absl::Now() + absl::Seconds(1)));
  context_->layer->Stop();
  pool_->Stop();
  pool_->Join();
  write_check_.reset();
  listener_.reset();
  metrics_listener_.reset();
  pool_->DestroyHandlers();
}

}  // namespace edge
