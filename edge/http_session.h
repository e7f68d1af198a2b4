// HttpSession: one TCP connection's HTTP/1.1 requests until it upgrades to a
// WebSocket: the lobby and room pages, /healthz, /readyz, /metrics, and the
// routing and Origin check of WebSocket upgrades (404 for an unknown path,
// 403 for a foreign origin, both before any handshake).
//
//   std::make_shared<HttpSession>(std::move(socket), context)->Run();
//
// Threading: runs on the connection's strand.
#ifndef CHAT_EDGE_HTTP_SESSION_H_
#define CHAT_EDGE_HTTP_SESSION_H_

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>

#include "edge/edge_context.h"

namespace edge {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket&& socket, EdgeContext* context);
  void Run();

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;

  void DoRead();
  void OnRead(boost::beast::error_code ec, size_t bytes);
  void OnWrite(bool keep_alive, boost::beast::error_code ec, size_t bytes);
  Response Handle(const Request& request);
  // Hands the connection to a WebSocketSession, or answers 404/403.
  std::optional<Response> Upgrade(Request&& request);

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<Response> response_;
  EdgeContext* const context_;
  std::string peer_;
};

// Whether a browser's Origin may open a WebSocket: the same host as the
// request's Host header, or one of `allowed` ("*", an exact origin such as
// "https://chat.example.com", or ".example.com" for the domain and its
// subdomains). No Origin at all (not a browser) is allowed.
bool OriginAllowed(const std::string& origin, const std::string& host,
                   const std::vector<std::string>& allowed);

}  // namespace edge

#endif  // CHAT_EDGE_HTTP_SESSION_H_
