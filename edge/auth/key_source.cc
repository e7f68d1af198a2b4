#include "edge/auth/key_source.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "shared/log.h"

namespace edge {
namespace {

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the JWKS file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

void LogSkipped(const PublicKeys& keys, const std::string& source) {
  for (const std::string& why : keys.skipped()) {
    chat::LogEvent("jwks_key_skipped", {{"source", source}, {"why", why}});
  }
}

absl::StatusOr<std::unique_ptr<JwksFile>> JwksFile::Open(std::string path, const chat::Clock* clock,
                                                         absl::Duration check_every) {
  absl::StatusOr<std::string> text = ReadAll(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::shared_ptr<const PublicKeys>> keys = PublicKeys::Parse(*text);
  if (!keys.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", keys.status().message()));
  }
  LogSkipped(**keys, path);
  std::unique_ptr<JwksFile> file(new JwksFile(std::move(path), clock, check_every));
  absl::MutexLock lock(&file->mu_);
  file->keys_ = *std::move(keys);
  file->text_ = *std::move(text);
  file->checked_ = clock->Now();
  return file;
}

std::shared_ptr<const PublicKeys> JwksFile::Keys() {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (now - checked_ < check_every_) return keys_;
    checked_ = now;  // This caller looks; the others go on with the keys in use.
  }
  absl::StatusOr<std::string> text = ReadAll(path_);
  absl::MutexLock lock(&mu_);
  if (!text.ok() || *text == text_) return keys_;
  text_ = *std::move(text);
  absl::StatusOr<std::shared_ptr<const PublicKeys>> keys = PublicKeys::Parse(text_);
  if (!keys.ok()) {
    chat::LogEvent("jwks_reload_failed", {{"file", path_},
                                          {"error", keys.status().message()},
                                          {"keeping", absl::StrCat(keys_->size(), " keys")}});
    return keys_;
  }
  keys_ = *std::move(keys);
  LogSkipped(*keys_, path_);
  chat::LogEvent("jwks_reloaded", {{"file", path_}, {"keys", absl::StrCat(keys_->size())}});
  return keys_;
}

// ------------------------------------------------------------------- JwksUrl

namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;

// One GET of https://host:port/target from `endpoints` (the host's addresses)
// within `timeout`: the body of a 200, else an error naming what failed
// (connect, TLS, status).
absl::StatusOr<std::string> HttpsGet(net::io_context& io, ssl::context& tls,
                                     const std::string& host, const std::string& port,
                                     const std::vector<net::ip::tcp::endpoint>& endpoints,
                                     const std::string& target, absl::Duration timeout) {
  beast::ssl_stream<beast::tcp_stream> stream(io, tls);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, target, 11};
  const std::string authority = host.find(':') == std::string::npos ? host : "[" + host + "]";
  request.set(http::field::host, port == "443" ? authority : absl::StrCat(authority, ":", port));
  request.set(http::field::user_agent, "chat-edge");
  request.set(http::field::accept, "application/json");
  http::response_parser<http::string_body> response;
  response.body_limit(1 << 20);  // A JWKS is a few KB.
  absl::Status failure = absl::DeadlineExceededError("timed out");
  auto fail = [&](const char* step, const beast::error_code& ec) {
    failure = absl::UnavailableError(absl::StrCat(step, ": ", ec.message()));
  };
  // Server Name Indication (for a name, never an address), and the
  // certificate must name the host.
  boost::system::error_code not_an_address;
  net::ip::make_address(host, not_an_address);
  if (not_an_address) SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  stream.set_verify_mode(ssl::verify_peer);
  stream.set_verify_callback(ssl::host_name_verification(host));
  beast::get_lowest_layer(stream).expires_after(absl::ToChronoNanoseconds(timeout));
  beast::get_lowest_layer(stream).async_connect(endpoints, [&](beast::error_code ec, auto) {
    if (ec) return fail("connect", ec);
    stream.async_handshake(ssl::stream_base::client, [&](beast::error_code ec) {
      if (ec) return fail("TLS", ec);
      http::async_write(stream, request, [&](beast::error_code ec, size_t) {
        if (ec) return fail("send", ec);
        http::async_read(stream, buffer, response, [&](beast::error_code ec, size_t) {
          if (ec) return fail("read", ec);
          failure = absl::OkStatus();
        });
      });
    });
  });
  io.run_for(absl::ToChronoNanoseconds(timeout) + std::chrono::milliseconds(100));
  if (!failure.ok()) return failure;
  if (response.get().result() != http::status::ok) {
    return absl::UnavailableError(absl::StrCat("HTTP ", response.get().result_int()));
  }
  return std::move(response.get().body());
}

}  // namespace

// A host's addresses, looked up on a thread of its own that is left to
// finish alone once nobody waits: getaddrinfo cannot be cancelled, and a DNS
// server that does not answer must hold up neither a fetch past its timeout
// nor the edge's shutdown (asio's resolver joins its thread when its
// io_context goes). At most kMaxStuck such threads at once.
class JwksUrl::Lookup {
 public:
  using Endpoints = std::vector<net::ip::tcp::endpoint>;
  static constexpr int kMaxStuck = 4;

  static absl::StatusOr<std::shared_ptr<Lookup>> Start(const std::string& host,
                                                       const std::string& port) {
    if (running_.fetch_add(1) >= kMaxStuck) {
      running_.fetch_sub(1);
      return absl::UnavailableError("resolve: earlier lookups of the host have not returned");
    }
    auto lookup = std::make_shared<Lookup>();
    std::thread([lookup, host, port] {
      net::io_context io;
      net::ip::tcp::resolver resolver(io);
      boost::system::error_code ec;
      Endpoints endpoints;
      for (const auto& entry : resolver.resolve(host, port, ec)) {
        endpoints.push_back(entry.endpoint());
      }
      {
        absl::MutexLock lock(&lookup->mu_);
        lookup->done_ = true;
        if (ec) {
          lookup->result_ = absl::UnavailableError(absl::StrCat("resolve: ", ec.message()));
        } else {
          lookup->result_ = std::move(endpoints);
        }
      }
      running_.fetch_sub(1);
    }).detach();
    return lookup;
  }

  // The addresses, or why not: the lookup failed, `deadline` passed, or
  // Abandon was called.
  absl::StatusOr<Endpoints> Wait(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto over = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || abandoned_; };
    mu_.AwaitWithDeadline(absl::Condition(&over), deadline);
    if (done_) return result_;
    return absl::DeadlineExceededError(abandoned_ ? "resolve: stopped" : "resolve: timed out");
  }
  void Abandon() {
    absl::MutexLock lock(&mu_);
    abandoned_ = true;
  }

 private:
  static inline std::atomic<int> running_{0};
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<Endpoints> result_ ABSL_GUARDED_BY(mu_);
};

struct JwksUrl::Fetcher {
  JwksUrlOptions options;
  std::string host, port, target;
  ssl::context tls{ssl::context::tls_client};
};

absl::StatusOr<std::unique_ptr<JwksUrl>> JwksUrl::Start(JwksUrlOptions options) {
  boost::system::result<boost::urls::url_view> url = boost::urls::parse_absolute_uri(options.url);
  if (!url.has_value() || url->scheme() != "https" || url->host().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--jwks_url must be an https:// URL; got \"", options.url, "\""));
  }
  auto fetcher = std::make_unique<Fetcher>();
  fetcher->host = url->host_type() == boost::urls::host_type::ipv6
                      ? url->host_ipv6_address().to_string()
                      : std::string(url->host());
  fetcher->port = url->has_port() ? std::string(url->port()) : "443";
  fetcher->target = url->encoded_target().empty() ? "/" : std::string(url->encoded_target());
  beast::error_code ec;
  if (options.ca_file.empty()) {
    fetcher->tls.set_default_verify_paths(ec);
  } else {
    fetcher->tls.load_verify_file(options.ca_file, ec);
  }
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load the CA for --jwks_url (",
        options.ca_file.empty() ? "the system's" : options.ca_file, "): ", ec.message()));
  }
  fetcher->options = std::move(options);
  std::unique_ptr<JwksUrl> source(new JwksUrl(std::move(fetcher)));
  source->thread_ = std::thread([s = source.get()] { s->Run(); });
  return source;
}

JwksUrl::JwksUrl(std::unique_ptr<Fetcher> fetcher)
    : fetcher_(std::move(fetcher)), keys_(std::make_shared<const PublicKeys>()) {}

JwksUrl::~JwksUrl() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    woken_ = true;
    if (looking_ != nullptr) looking_->Abandon();
    if (fetching_ != nullptr) fetching_->stop();
  }
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const PublicKeys> JwksUrl::Keys() {
  absl::MutexLock lock(&mu_);
  return keys_;
}

void JwksUrl::UnknownKid(absl::string_view kid) {
  absl::MutexLock lock(&mu_);
  if (!refetch_) woken_ = true;
  refetch_ = true;
}

uint64_t JwksUrl::attempts() {
  absl::MutexLock lock(&mu_);
  return attempts_;
}

absl::StatusOr<std::string> JwksUrl::Fetch(absl::Time deadline) {
  // The host's addresses: at once for an address, else looked up aside.
  Lookup::Endpoints endpoints;
  boost::system::error_code not_an_address;
  const net::ip::address address = net::ip::make_address(fetcher_->host, not_an_address);
  uint32_t port = 0;
  if (!absl::SimpleAtoi(fetcher_->port, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--jwks_url: bad port ", fetcher_->port));
  }
  if (!not_an_address) {
    endpoints.emplace_back(address, static_cast<uint16_t>(port));
  } else {
    absl::StatusOr<std::shared_ptr<Lookup>> lookup = Lookup::Start(fetcher_->host, fetcher_->port);
    if (!lookup.ok()) return lookup.status();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return absl::CancelledError("stopping");
      looking_ = *lookup;
    }
    absl::StatusOr<Lookup::Endpoints> found = (*lookup)->Wait(deadline);
    {
      absl::MutexLock lock(&mu_);
      looking_ = nullptr;
    }
    if (!found.ok()) return found.status();
    endpoints = *std::move(found);
  }
  // The destructor stops the rest through this io_context.
  net::io_context io;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    fetching_ = &io;
  }
  absl::StatusOr<std::string> body =
      HttpsGet(io, fetcher_->tls, fetcher_->host, fetcher_->port, endpoints, fetcher_->target,
               std::max(deadline - absl::Now(), absl::Milliseconds(1)));
  absl::MutexLock lock(&mu_);
  fetching_ = nullptr;
  return body;
}

void JwksUrl::Run() {
  const JwksUrlOptions& o = fetcher_->options;
  absl::BitGen random;
  int failures = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // Due: the schedule's time, or an unknown kid once min_refetch has
      // passed since the last attempt (never sooner than the backoff allows).
      auto due = [this, &o]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        const absl::Time now = absl::Now();
        return stopping_ || now >= next_ ||
               (refetch_ && now >= last_attempt_ + o.min_refetch && now >= backoff_until_);
      };
      while (!due()) {
        // Until the next fetch is due, or woken: an unknown kid, or stopping.
        absl::Time wake = next_;
        if (refetch_)
          wake = std::min(wake, std::max(last_attempt_ + o.min_refetch, backoff_until_));
        woken_ = false;
        mu_.AwaitWithDeadline(absl::Condition(&woken_), wake);
      }
      if (stopping_) return;
      refetch_ = false;
      last_attempt_ = absl::Now();
      ++attempts_;
    }
    const absl::Time deadline = absl::Now() + o.timeout;
    absl::StatusOr<std::string> body = Fetch(deadline);
    absl::StatusOr<std::shared_ptr<const PublicKeys>> keys =
        body.ok() ? PublicKeys::Parse(*body) : body.status();
    absl::MutexLock lock(&mu_);
    if (keys.ok()) {
      failures = 0;
      keys_ = *std::move(keys);
      LogSkipped(*keys_, o.url);
      next_ = absl::Now() + o.refresh;
      backoff_until_ = absl::InfinitePast();
      chat::LogEvent("jwks_fetched", {{"url", o.url}, {"keys", absl::StrCat(keys_->size())}});
      continue;
    }
    if (stopping_) return;  // The destructor cut the fetch short.
    ++failures;
    absl::Duration backoff = o.min_backoff;
    for (int i = 1; i < failures && backoff < o.max_backoff; ++i) backoff *= 2;
    backoff = std::min(backoff, o.max_backoff) * absl::Uniform(random, 0.5, 1.0);
    // The keys in use stay; not even an unknown kid asks again before this.
    next_ = backoff_until_ = absl::Now() + backoff;
    chat::LogEvent("jwks_fetch_failed", {{"url", o.url},
                                         {"error", keys.status().message()},
                                         {"keeping", absl::StrCat(keys_->size(), " keys")},
                                         {"retry_in", absl::FormatDuration(backoff)}});
  }
}

}  // namespace edge
