#include "edge/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/url/parse.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "edge/pages.h"
#include "edge/websocket_session.h"
#include "shared/log.h"

namespace edge {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

// "host[:port]" of an origin, lower-case, with the scheme's default port dropped.
std::string OriginAuthority(const boost::urls::url_view& u) {
  std::string host = absl::AsciiStrToLower(std::string(u.encoded_host()));
  std::string port(u.port());
  const bool default_port =
      (u.scheme() == "http" && port == "80") || (u.scheme() == "https" && port == "443");
  return port.empty() || default_port ? host : absl::StrCat(host, ":", port);
}

}  // namespace

bool OriginAllowed(const std::string& origin, const std::string& host,
                   const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  auto parsed = boost::urls::parse_absolute_uri(origin);
  if (!parsed) return false;
  const std::string authority = OriginAuthority(*parsed);
  std::string own = absl::AsciiStrToLower(host);
  if (absl::EndsWith(own, ":80") && parsed->scheme() == "http") own.resize(own.size() - 3);
  if (absl::EndsWith(own, ":443") && parsed->scheme() == "https") own.resize(own.size() - 4);
  if (authority == own) return true;
  const std::string origin_host = absl::AsciiStrToLower(std::string(parsed->encoded_host()));
  for (const std::string& a : allowed) {
    if (a == "*") return true;
    if (a.front() == '.') {
      if (origin_host == a.substr(1) || absl::EndsWith(origin_host, a)) return true;
    } else if (auto want = boost::urls::parse_absolute_uri(a)) {
      if (want->scheme() == parsed->scheme() && OriginAuthority(*want) == authority) return true;
    }
  }
  return false;
}

HttpSession::HttpSession(net::ip::tcp::socket&& socket, EdgeContext* context)
    : stream_(std::move(socket)), context_(context) {
  beast::error_code ec;
  auto endpoint = stream_.socket().remote_endpoint(ec);
  if (!ec) peer_ = absl::StrCat(endpoint.address().to_string(), ":", endpoint.port());
  stream_.socket().set_option(net::ip::tcp::no_delay(true), ec);
}

void HttpSession::Run() {
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&HttpSession::DoRead, shared_from_this()));
}

void HttpSession::DoRead() {
  parser_.emplace();
  parser_->header_limit(16 << 10);
  parser_->body_limit(16 << 10);
  stream_.expires_after(std::chrono::seconds(30));
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
  std::optional<Response> response;
  if (beast::websocket::is_upgrade(request)) {
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

HttpSession::Response HttpSession::Handle(const Request& request) {
  const unsigned v = request.version();
  auto target = boost::urls::parse_origin_form(request.target());
  if (!target) return Text(http::status::bad_request, v, "bad request target\n");
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    Response r = Text(http::status::method_not_allowed, v, "only GET\n");
    r.set(http::field::allow, "GET, HEAD");
    return r;
  }
  const std::string path = target->path();  // Decoded.
  Response r;
  if (path == "/") {
    r = Text(http::status::found, v, "");
    r.set(http::field::location, "/chat/");
  } else if (path == "/chat/") {
    r = Text(http::status::ok, v, LobbyPage(), "text/html; charset=utf-8");
  } else if (absl::StartsWith(path, "/chat/") && absl::EndsWith(path, "/") && path.size() > 7 &&
             path.find('/', 6) == path.size() - 1) {
    r = Text(http::status::ok, v, RoomPage(path.substr(6, path.size() - 7)),
             "text/html; charset=utf-8");
  } else if (path == "/healthz") {
    r = Text(http::status::ok, v, "ok\n");
  } else if (path == "/readyz") {
    const bool ready = context_->layer->ready() && !context_->shutting_down;
    r = Text(ready ? http::status::ok : http::status::service_unavailable, v,
             ready ? "ready\n" : "not ready: the channel layer is unreachable or draining\n");
  } else if (path == "/metrics") {
    r = Text(http::status::ok, v, context_->metrics->Render(), "text/plain; version=0.0.4");
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

std::optional<HttpSession::Response> HttpSession::Upgrade(Request&& request) {
  const unsigned v = request.version();
  auto target = boost::urls::parse_origin_form(request.target());
  std::optional<Router::Match> match;
  if (target) match = context_->router->Find(target->path());
  if (!match.has_value() || context_->shutting_down) {
    return Text(http::status::not_found, v, "no WebSocket route here\n");
  }
  const std::string origin(request[http::field::origin]);
  if (!OriginAllowed(origin, std::string(request[http::field::host]),
                     context_->options.allowed_origins)) {
    chat::LogEvent("ws_origin_refused", {{"origin", origin}, {"peer", peer_}});
    return Text(http::status::forbidden, v, "origin not allowed\n");
  }
  Scope scope;
  scope.path = target->path();
  scope.query_string = std::string(target->encoded_query());
  scope.url_route = std::move(match->captures);
  for (const auto& field : request) {
    scope.headers.emplace_back(absl::AsciiStrToLower(std::string(field.name_string())),
                               std::string(field.value()));
  }
  scope.client = peer_;
  stream_.expires_never();
  // A client may send its first frames right behind the upgrade request.
  std::string early_bytes = beast::buffers_to_string(buffer_.data());
  auto session = std::make_shared<WebSocketSession>(stream_.release_socket(), std::move(request),
                                                    std::move(early_bytes), (*match->factory)(),
                                                    std::move(scope), context_);
  session->Run();
  return std::nullopt;
}

}  // namespace edge
