#include "edge/net/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "edge/net/websocket_session.h"
#include "shared/log.h"
#include "shared/reason.h"

namespace edge {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

// An origin or a Host header's parts, lower-case; port 0 when none was given.
struct Authority {
  std::string host;
  int port = 0;
};

bool HostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// "name[:port]", "1.2.3.4[:port]" or "[v6][:port]", and nothing else.
std::optional<Authority> ParseAuthority(absl::string_view text) {
  Authority out;
  size_t end_of_host = 0;
  if (!text.empty() && text.front() == '[') {
    end_of_host = text.find(']');
    if (end_of_host == absl::string_view::npos || end_of_host < 2) return std::nullopt;
    for (char c : text.substr(1, end_of_host - 1)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return std::nullopt;
      }
    }
    ++end_of_host;
  } else {
    while (end_of_host < text.size() && HostChar(text[end_of_host])) ++end_of_host;
    if (end_of_host == 0) return std::nullopt;
  }
  out.host = absl::AsciiStrToLower(text.substr(0, end_of_host));
  absl::string_view rest = text.substr(end_of_host);
  if (rest.empty()) return out;
  if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) return std::nullopt;
  int port = 0;
  for (char c : rest.substr(1)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535) return std::nullopt;
  out.port = port;
  return out;
}

struct Origin {
  std::string scheme;
  Authority authority;  // With the scheme's default port filled in.
};

std::optional<Origin> ParseOrigin(absl::string_view text) {
  Origin out;
  for (const char* scheme : {"http", "https"}) {
    const std::string prefix = absl::StrCat(scheme, "://");
    if (absl::StartsWithIgnoreCase(text, prefix)) {
      out.scheme = scheme;
      text.remove_prefix(prefix.size());
      break;
    }
  }
  if (out.scheme.empty()) return std::nullopt;
  std::optional<Authority> authority = ParseAuthority(text);
  if (!authority.has_value()) return std::nullopt;
  out.authority = *std::move(authority);
  if (out.authority.port == 0) out.authority.port = out.scheme == "https" ? 443 : 80;
  return out;
}

bool NameMatches(const std::string& host, const std::string& pattern) {
  if (pattern == "*") return true;
  const std::string p = absl::AsciiStrToLower(pattern);
  if (!p.empty() && p.front() == '.') {
    return host == p.substr(1) || (host.size() > p.size() && absl::EndsWith(host, p));
  }
  return host == p;
}

}  // namespace

bool OriginAllowed(const std::string& origin, const std::string& host,
                   const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  std::optional<Origin> o = ParseOrigin(origin);
  if (!o.has_value()) return false;
  if (std::optional<Authority> own = ParseAuthority(host)) {
    const int own_port = own->port != 0 ? own->port : o->authority.port;
    if (own->host == o->authority.host && own_port == o->authority.port) return true;
  }
  for (const std::string& a : allowed) {
    if (a == "*") return true;
    if (!a.empty() && a.front() == '.') {
      if (NameMatches(o->authority.host, a)) return true;
    } else if (std::optional<Origin> want = ParseOrigin(a)) {
      if (want->scheme == o->scheme && want->authority.host == o->authority.host &&
          want->authority.port == o->authority.port) {
        return true;
      }
    }
  }
  return false;
}

bool HostAllowed(const std::string& host, const std::vector<std::string>& allowed) {
  std::optional<Authority> parsed = ParseAuthority(host);
  if (!parsed.has_value()) return false;
  for (const std::string& a : allowed) {
    if (NameMatches(parsed->host, a)) return true;
  }
  return false;
}

bool ValidWebSocketKey(std::string_view key) {
  // 16 bytes are 24 base64 characters, the last two "==".
  if (key.size() != 24 || key.substr(22) != "==") return false;
  static constexpr std::string_view kLast = "AQgw";  // The 4 bits left over must be 0.
  for (size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/') return false;
  }
  return kLast.find(key[21]) != std::string_view::npos;
}

HttpSession::HttpSession(net::ip::tcp::socket&& socket, size_t loop,
                         std::shared_ptr<EdgeContext> context, bool metrics_port)
    : stream_(std::move(socket)),
      context_(std::move(context)),
      metrics_port_(metrics_port),
      loop_(loop) {
  beast::error_code ec;
  auto endpoint = stream_.socket().remote_endpoint(ec);
  if (!ec) {
    address_ = endpoint.address().to_string();
    peer_ = absl::StrCat(address_, ":", endpoint.port());
  }
  stream_.socket().set_option(net::ip::tcp::no_delay(true), ec);
}

void HttpSession::Run() {
  if (!metrics_port_) {
    absl::StatusOr<Admission::Ticket> ticket =
        context_->admission->Admit(address_, [weak = weak_from_this()] {
          if (auto self = weak.lock()) self->Evict();
        });
    if (!ticket.ok()) {
      Refuse(ticket.status());
      return;
    }
    ticket_ = *std::move(ticket);
  }
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&HttpSession::DoRead, shared_from_this()));
}

void HttpSession::Refuse(const absl::Status& why) {
  context_->metrics->refused(chat::ReasonOf(why)).Increment();
  const std::string body = absl::StrCat("refused: ", why.message(), "; try again later\n");
  const std::string reply = absl::StrCat(
      "HTTP/1.1 503 Service Unavailable\r\nServer: chat-edge\r\nContent-Type: text/plain\r\n"
      "Retry-After: 5\r\nConnection: close\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body);
  // Non-blocking and best effort: a refusal must cost no more than the accept.
  auto& socket = stream_.socket();
  beast::error_code ec;
  socket.non_blocking(true, ec);
  char sink[4096];
  socket.read_some(net::buffer(sink), ec);  // Whatever arrived, so close() sends no RST.
  socket.write_some(net::buffer(reply), ec);
  socket.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

void HttpSession::Evict() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->context_->metrics->refused("evicted").Increment();
    beast::error_code ignored;
    self->stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    self->stream_.socket().close(ignored);
  });
}

void HttpSession::DoRead() {
  parser_.emplace();
  parser_->header_limit(16 << 10);
  parser_->body_limit(16 << 10);
  stream_.expires_after(absl::ToChronoNanoseconds(context_->options.header_timeout));
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
}

void HttpSession::OnRead(beast::error_code ec, size_t) {
  if (ec) {
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    return;
  }
  Request request = parser_->release();
  ticket_.Settle();
  std::optional<Response> response;
  if (metrics_port_) {
    response = Handle(request);
  } else if (beast::websocket::is_upgrade(request)) {
    response = Upgrade(std::move(request));
    if (!response.has_value()) return;  // The WebSocketSession owns the socket now.
    response->keep_alive(false);
  } else {
    response = Handle(request);
  }
  response->set(http::field::server, "chat-edge");
  response->prepare_payload();
  response_ = std::make_shared<Response>(std::move(*response));
  const bool keep_alive = response_->keep_alive();
  http::async_write(
      stream_, *response_,
      beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(), keep_alive));
}

void HttpSession::OnWrite(bool keep_alive, beast::error_code ec, size_t) {
  if (ec || !keep_alive) {
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    return;
  }
  DoRead();
}

namespace {

http::response<http::string_body> Text(http::status status, unsigned version, std::string body,
                                       const char* type = "text/plain; charset=utf-8") {
  http::response<http::string_body> r(status, version);
  r.set(http::field::content_type, type);
  r.set(http::field::cache_control, "no-store");
  r.body() = std::move(body);
  return r;
}

}  // namespace

HttpSession::Response HttpSession::Refusal(http::status status, unsigned version,
                                           std::string body) {
  context_->metrics->http_errors(absl::StrCat(static_cast<unsigned>(status))).Increment();
  return Text(status, version, std::move(body));
}

HttpSession::Response HttpSession::DevToken(const Request& request) {
  const unsigned v = request.version();
  auto refuse = [&](http::status status, std::string body) {
    Response r = Refusal(status, v, std::move(body));
    r.keep_alive(request.keep_alive());
    return r;
  };
  if (!context_->dev_token_issuer || context_->verifier == nullptr) {
    return refuse(http::status::not_found, "no token issuer here (see --dev_token_issuer)\n");
  }
  if (request.method() != http::verb::post) {
    Response r = refuse(http::status::method_not_allowed, "POST a JSON {\"name\": \"...\"}\n");
    r.set(http::field::allow, "POST");
    return r;
  }
  // Only this site's own pages may ask (a page elsewhere must not mint names here).
  const std::string host(request[http::field::host]);
  const std::string origin(request[http::field::origin]);
  if (origin.empty() || !OriginAllowed(origin, host, context_->options.allowed_origins)) {
    return refuse(http::status::forbidden, "origin not allowed (see --allowed_origins)\n");
  }
  boost::system::error_code ec;
  boost::json::value body = boost::json::parse(request.body(), ec);
  const boost::json::value* name =
      !ec && body.is_object() ? body.as_object().if_contains("name") : nullptr;
  std::string display =
      name != nullptr && name->is_string()
          ? std::string(absl::StripAsciiWhitespace(std::string(name->as_string())))
          : "";
  bool printable = true;
  for (unsigned char c : display) printable = printable && c >= 0x20 && c != 0x7f;
  if (display.empty() || display.size() > 64 || !printable) {
    return refuse(http::status::bad_request,
                  "the body must be {\"name\": \"...\"}: 1 to 64 bytes of text, no control "
                  "characters\n");
  }
  User user;
  user.id =
      absl::StrCat("dev-", absl::Hex(absl::Uniform<uint64_t>(absl::BitGen()), absl::kZeroPad16));
  user.name = display;
  boost::json::object out;
  out["token"] = context_->verifier->Mint(user, absl::Hours(1));
  out["id"] = user.id;
  out["name"] = user.name;
  chat::LogEvent("dev_token_issued", {{"id", user.id}, {"peer", peer_}});
  Response r = Text(http::status::ok, v, boost::json::serialize(out), "application/json");
  r.keep_alive(request.keep_alive());
  return r;
}

HttpSession::Response HttpSession::Handle(const Request& request) {
  const unsigned v = request.version();
  auto target = boost::urls::parse_origin_form(request.target());
  if (!target) return Text(http::status::bad_request, v, "bad request target\n");
  if (!metrics_port_ && target->path() == "/auth/token") return DevToken(request);
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    Response r = Text(http::status::method_not_allowed, v, "only GET\n");
    r.set(http::field::allow, "GET, HEAD");
    return r;
  }
  const std::string path = target->path();  // Decoded.
  Response r;
  if (metrics_port_) {
    if (path == "/metrics") {
      r = Text(http::status::ok, v, context_->metrics->Render(), "text/plain; version=0.0.4");
    } else if (path == "/healthz") {
      r = Text(http::status::ok, v, "ok\n");
    } else {
      r = Text(http::status::not_found, v, "not found: this port serves /metrics and /healthz\n");
    }
  } else if (path == "/ws/refused") {
    r = LastRefusal(request, *target);
  } else if (auto page = context_->pages ? context_->pages(path) : std::nullopt) {
    r = Text(static_cast<http::status>(page->status), v, std::move(page->body),
             page->content_type.c_str());
    if (!page->location.empty()) r.set(http::field::location, page->location);
  } else if (path == "/healthz") {
    r = Text(http::status::ok, v, "ok\n");
  } else if (path == "/readyz") {
    const bool ready = context_->layer->ready() && !context_->shutting_down;
    r = Text(ready ? http::status::ok : http::status::service_unavailable, v,
             ready ? "ready\n" : "not ready: the channel layer is unreachable or draining\n");
  } else {
    r = Text(http::status::not_found, v, "not found\n");
  }
  if (r.result() == http::status::ok) {
    r.set("X-Content-Type-Options", "nosniff");
    if (absl::StartsWith(std::string(r[http::field::content_type]), "text/html")) {
      r.set("Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'");
    }
  }
  r.keep_alive(request.keep_alive());
  if (request.method() == http::verb::head) {
    r.content_length(r.body().size());
    r.body().clear();
  }
  return r;
}

HttpSession::Response HttpSession::LastRefusal(const Request& request,
                                               boost::urls::url_view target) {
  std::optional<RecentRefusals::Refusal> refusal =
      context_->refusals->Find(RecentRefusals::AttemptOf(std::string(target.encoded_query())));
  if (!refusal.has_value()) {
    Response r = Text(http::status::no_content, request.version(), "");
    r.set(http::field::cache_control, "no-store");
    return r;
  }
  boost::json::object out;
  out["status"] = refusal->status;
  out["reason"] = std::string(absl::StripTrailingAsciiWhitespace(refusal->reason));
  out["age_seconds"] = absl::ToInt64Seconds(context_->refusals->Now() - refusal->at);
  Response r =
      Text(http::status::ok, request.version(), boost::json::serialize(out), "application/json");
  r.set(http::field::cache_control, "no-store");
  return r;
}

absl::StatusOr<std::optional<User>> HttpSession::Authenticate(const Request& request,
                                                              boost::urls::url_view target,
                                                              const std::string& room) {
  const AuthMode mode = context_->options.auth;
  if (mode == AuthMode::kOff) {
    context_->metrics->auth("anonymous").Increment();
    return std::nullopt;
  }
  // `Authorization: Bearer TOKEN`, or `?token=TOKEN` (browsers cannot set
  // headers on a WebSocket).
  std::string token;
  const std::string authorization(request[http::field::authorization]);
  if (absl::StartsWithIgnoreCase(authorization, "Bearer ")) {
    token = std::string(absl::StripAsciiWhitespace(absl::string_view(authorization).substr(7)));
  } else if (auto it = target.params().find("token"); it != target.params().end()) {
    token = (*it).value;
  }
  auto refused = [&](const char* reason, absl::Status status) {
    context_->metrics->auth("refused", reason).Increment();
    return status;
  };
  if (token.empty()) {
    if (mode == AuthMode::kRequired) {
      return refused("missing", absl::UnauthenticatedError(
                                    "a token is required (?token=... or Authorization: Bearer)"));
    }
    context_->metrics->auth("anonymous").Increment();
    return std::nullopt;
  }
  if (context_->verifier == nullptr) {
    return refused("invalid",
                   absl::UnauthenticatedError("token refused: this edge verifies no tokens (no "
                                              "--jwt_secret_file, --jwks_file or --jwks_url)"));
  }
  absl::StatusOr<User> user = context_->verifier->Verify(token);
  if (!user.ok()) {
    const bool expired = chat::ReasonOf(user.status()) == TokenVerifier::kExpired;
    return refused(expired ? "expired" : "invalid", user.status());
  }
  if (!room.empty() && !user->MayJoin(room)) {
    return refused("room", absl::PermissionDeniedError(absl::StrCat(
                               "token of \"", user->id, "\" does not admit room \"", room, "\"")));
  }
  context_->metrics->auth("user").Increment();
  return std::optional<User>(*std::move(user));
}

std::optional<HttpSession::Response> HttpSession::Upgrade(Request&& request) {
  const unsigned v = request.version();
  auto target = boost::urls::parse_origin_form(request.target());
  // Kept by the attempt's id for its page to read back (RecentRefusals).
  const std::string attempt =
      target ? RecentRefusals::AttemptOf(std::string(target->encoded_query())) : "";
  auto refuse = [&](http::status status, std::string body) {
    context_->refusals->Record(attempt, static_cast<int>(status), body);
    return Refusal(status, v, std::move(body));
  };
  std::optional<Router::Match> match;
  if (target) match = context_->router->Find(target->path());
  if (!match.has_value() || context_->shutting_down) {
    return refuse(http::status::not_found, "no WebSocket route here\n");
  }
  // Everything Beast's handshake would refuse is refused here, in our words.
  if (request.method() != http::verb::get || v != 11) {
    return refuse(http::status::bad_request, "a WebSocket upgrade is a GET in HTTP/1.1\n");
  }
  if (request[http::field::sec_websocket_version] != "13") {
    Response r = refuse(http::status::upgrade_required, "WebSocket version 13 is required\n");
    r.set(http::field::sec_websocket_version, "13");
    return r;
  }
  if (!ValidWebSocketKey(request[http::field::sec_websocket_key])) {
    return refuse(http::status::bad_request,
                  "Sec-WebSocket-Key must be 16 random bytes in base64 (RFC 6455)\n");
  }
  const std::string host(request[http::field::host]);
  if (!HostAllowed(host, context_->options.allowed_hosts)) {
    chat::LogEvent("ws_host_refused", {{"host", host}, {"peer", peer_}});
    return refuse(http::status::forbidden, "host not allowed (see --allowed_hosts)\n");
  }
  const std::string origin(request[http::field::origin]);
  if (!OriginAllowed(origin, host, context_->options.allowed_origins)) {
    chat::LogEvent("ws_origin_refused", {{"origin", origin}, {"peer", peer_}});
    return refuse(http::status::forbidden, "origin not allowed (see --allowed_origins)\n");
  }
  // Who it is: before the upgrade, so that a refusal is an HTTP status.
  auto room = match->captures.find("room_name");
  absl::StatusOr<std::optional<User>> user =
      Authenticate(request, *target, room == match->captures.end() ? "" : room->second);
  if (!user.ok()) {
    const bool forbidden = absl::IsPermissionDenied(user.status());
    chat::LogEvent("ws_auth_refused", {{"peer", peer_}, {"reason", user.status().message()}});
    return refuse(forbidden ? http::status::forbidden : http::status::unauthorized,
                  absl::StrCat(user.status().message(), "\n"));
  }
  Scope scope;
  if (user->has_value()) {
    scope.user = (*user)->name;
    scope.user_id = (*user)->id;
    scope.authenticated = true;
    scope.user_expires = (*user)->expires;
    scope.user_claims = (*user)->claims_json;
  }
  scope.path = target->path();
  scope.query_string = std::string(target->encoded_query());
  scope.url_route = std::move(match->captures);
  for (const auto& field : request) {
    scope.headers.emplace_back(absl::AsciiStrToLower(std::string(field.name_string())),
                               std::string(field.value()));
    if (field.name() == http::field::sec_websocket_protocol) {
      const absl::string_view value(field.value().data(), field.value().size());
      for (absl::string_view p : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
        scope.subprotocols.emplace_back(absl::StripAsciiWhitespace(p));
      }
    }
  }
  scope.client = peer_;
  stream_.expires_never();
  // A client may send its first frames right behind the upgrade request.
  std::string early_bytes = beast::buffers_to_string(buffer_.data());
  auto session = std::make_shared<WebSocketSession>(
      stream_.release_socket(), loop_, std::move(request), std::move(early_bytes),
      (*match->factory)(), std::move(scope), context_, std::move(ticket_));
  session->Run();
  return std::nullopt;
}

}  // namespace edge
