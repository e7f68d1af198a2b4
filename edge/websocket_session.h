// WebSocketSession: one browser WebSocket, after its upgrade request was
// routed to a consumer. Runs the consumer's lifecycle, reads frames, and owns a
// bounded outgoing queue with one write in flight.
//
// The handshake waits for the consumer: Accept() completes it, Close() before
// that refuses it with HTTP 403 (as in Channels). A client whose queue passes
// its bound (it stopped reading) is closed with 1013 and, if even the close
// cannot be written, its socket is shut two seconds later.
//
//   std::make_shared<WebSocketSession>(std::move(socket), std::move(request),
//                                      std::move(consumer), std::move(scope), context)->Run();
//
// Threading: everything runs on the session's strand; OnEvent and Bind hop
// onto it from any thread.
#ifndef CHAT_EDGE_WEBSOCKET_SESSION_H_
#define CHAT_EDGE_WEBSOCKET_SESSION_H_

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <memory>
#include <string>

#include "edge/consumer.h"
#include "edge/edge_context.h"

namespace edge {

class WebSocketSession : public std::enable_shared_from_this<WebSocketSession>,
                         public ChannelSink,
                         public Connection {
 public:
  WebSocketSession(boost::asio::ip::tcp::socket&& socket,
                   boost::beast::http::request<boost::beast::http::string_body> request,
                   std::unique_ptr<Consumer> consumer, Scope scope, EdgeContext* context);
  ~WebSocketSession() override;

  void Run();
  // From any thread: closes the connection with `code` (shutdown uses 1001).
  void CloseFromOutside(uint16_t code);

  // ChannelSink: any thread.
  void OnEvent(const LayerEventPtr& event) override;

  // Connection: on the strand.
  void Accept() override;
  void Close(uint16_t code) override;
  void SendFrame(Frame text) override;
  std::function<void()> Bind(std::function<void()> fn) override;
  void CountDrop(const char* reason) override;

 private:
  enum class State { kConnecting, kOpen, kClosing, kClosed };

  void OnAccept(boost::beast::error_code ec);
  void Reject();
  void DoRead();
  void OnRead(boost::beast::error_code ec, size_t bytes);
  void DoWrite();
  void OnWrite(boost::beast::error_code ec, size_t bytes);
  void DoClose();
  // Drops every queued frame but the one being written.
  void DropQueued();
  // Ends the consumer's life once: Disconnect, leave groups, unregister.
  void Finish(uint16_t code);

  // A plain socket: the websocket stream keeps its own timeouts, and a
  // tcp_stream would add half a kilobyte and a timer to every connection.
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
  // The upgrade request, until the handshake is answered.
  boost::beast::http::request<boost::beast::http::string_body> request_;
  std::unique_ptr<Consumer> consumer_;
  EdgeContext* const context_;
  std::string channel_;
  std::string peer_;
  Scope scope_;  // Handed to the consumer in Run().
  boost::beast::flat_buffer buffer_;
  boost::asio::steady_timer force_close_;
  std::shared_ptr<boost::beast::http::response<boost::beast::http::string_body>> refusal_;

  // Keeps the session alive while its consumer decides (e.g. waits for a
  // group_add to be confirmed); released by Accept, Close or the timeout.
  std::shared_ptr<WebSocketSession> connecting_hold_;
  State state_ = State::kConnecting;
  std::deque<Frame> queue_;
  size_t queue_bytes_ = 0;
  bool writing_ = false;
  uint16_t close_code_ = kCloseNormal;
  bool finished_ = false;
};

}  // namespace edge

#endif  // CHAT_EDGE_WEBSOCKET_SESSION_H_
