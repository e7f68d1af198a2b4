// HttpSession: one TCP connection's HTTP/1.1 requests until it upgrades to a
// WebSocket: the lobby and room pages, /healthz, /readyz, and the routing and
// checks of WebSocket upgrades, all before any handshake: 404 for an unknown
// path, 400 for a malformed upgrade (bad Host or Sec-WebSocket-Key), 426 for
// another WebSocket version, 403 for a host not in --allowed_hosts or a
// foreign Origin. On the metrics port it serves /metrics and /healthz only.
//
// A connection first takes its place with the edge's Admission (503 and
// closed if there is none); a request must arrive whole within the header
// timeout.
//
//   std::make_shared<HttpSession>(std::move(socket), loop, context, /*metrics_port=*/false)->Run();
//
// Threading: runs on loop `loop` of the edge's IoPool, which the socket
// belongs to (Run may be called from another thread).
#ifndef CHAT_EDGE_NET_HTTP_SESSION_H_
#define CHAT_EDGE_NET_HTTP_SESSION_H_

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/url_view.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "edge/auth/token.h"
#include "edge/net/edge_context.h"

namespace edge {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket&& socket, size_t loop,
              std::shared_ptr<EdgeContext> context, bool metrics_port);
  void Run();

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;

  void DoRead();
  void OnRead(boost::beast::error_code ec, size_t bytes);
  void OnWrite(bool keep_alive, boost::beast::error_code ec, size_t bytes);
  Response Handle(const Request& request);
  // POST /auth/token {"name": "..."}: a short-lived token for that display
  // name, from the dev-mode issuer; same-origin pages only.
  Response DevToken(const Request& request);
  // GET /ws/refused?attempt=ID: that attempt's refused upgrade
  // (RecentRefusals), as {"status", "reason", "age_seconds"}, or 204.
  Response LastRefusal(const Request& request, boost::urls::url_view target);
  // An error answer, counted in edge_http_errors_total{status}.
  Response Refusal(boost::beast::http::status status, unsigned version, std::string body);
  // Hands the connection to a WebSocketSession, or answers why not.
  std::optional<Response> Upgrade(Request&& request);
  // The user the request's token names (nullopt: anonymous), or why the
  // upgrade is refused: UNAUTHENTICATED (401) or PERMISSION_DENIED (403).
  absl::StatusOr<std::optional<User>> Authenticate(const Request& request,
                                                   boost::urls::url_view target,
                                                   const std::string& room);
  // Answers 503 with `why` at once, without reading, and closes; its reason
  // (chat::ReasonOf) labels the metric.
  void Refuse(const absl::Status& why);
  // Closes the connection to make room for another (from any thread).
  void Evict();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<Response> response_;
  const std::shared_ptr<EdgeContext> context_;
  const bool metrics_port_;
  const size_t loop_;
  Admission::Ticket ticket_;
  std::string peer_;
  std::string address_;  // The peer's IP address alone.
};

// Whether a browser's Origin may open a WebSocket. The Origin must be an
// exact RFC 6454 origin, http or https: scheme "://" host [":" port], nothing
// else. It is allowed when its host and port equal the request's Host header
// (a missing port is the scheme's default), or when it is one of `allowed`:
// "*", an exact origin such as "https://chat.example.com", or ".example.com"
// for the domain and its subdomains. No Origin at all (not a browser) is allowed.
bool OriginAllowed(const std::string& origin, const std::string& host,
                   const std::vector<std::string>& allowed);

// Whether a Host header ("name[:port]") is well-formed and names one of
// `allowed` (Django's ALLOWED_HOSTS: "*", "chat.example.com", ".example.com").
bool HostAllowed(const std::string& host, const std::vector<std::string>& allowed);

// Whether a Sec-WebSocket-Key is 16 bytes in base64, as RFC 6455 4.1 asks.
bool ValidWebSocketKey(std::string_view key);

}  // namespace edge

#endif  // CHAT_EDGE_NET_HTTP_SESSION_H_
