// WsClient: a real WebSocket client for tests (Boost.Beast), with a timeout
// on every operation so that a test fails instead of hanging.
//
//   auto c = WsClient::Connect(port, "/ws/chat/lobby/");
//   (*c)->SendText(R"({"message":"hi"})");
//   absl::StatusOr<std::string> frame = (*c)->Read(absl::Seconds(5));
#ifndef CHAT_TESTS_SUPPORT_WS_CLIENT_H_
#define CHAT_TESTS_SUPPORT_WS_CLIENT_H_

#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace chat::testing {

class WsClient {
 public:
  // A refused handshake is FAILED_PRECONDITION with "HTTP <status>" in the message.
  static absl::StatusOr<std::unique_ptr<WsClient>> Connect(
      int port, const std::string& path, const std::map<std::string, std::string>& headers = {},
      const std::string& host = "127.0.0.1");
  // The HTTP status of a refused handshake, parsed from Connect's error; 0 if none.
  static int RefusedStatus(const absl::Status& status);

  bool SendText(const std::string& text);
  bool SendBinary(const std::string& bytes);
  // Sends asynchronously and waits (10 s at most) for the write; a read left
  // pending by Read() meanwhile takes what arrives.
  // The next text frame. After the server closed: NOT_FOUND; see close_code().
  // Nothing within `timeout`: DEADLINE_EXCEEDED (the client stays usable).
  absl::StatusOr<std::string> Read(absl::Duration timeout = absl::Seconds(5));
  // Reads until the server closes; the close code, or nullopt on timeout.
  std::optional<int> WaitClosed(absl::Duration timeout = absl::Seconds(5));
  // Closes from our side (code 1000) and waits for the server's answer.
  void Close();
  std::optional<int> close_code() const { return close_code_; }
  // The reason in the server's close frame (once closed).
  std::string close_reason() const { return std::string(ws_.reason().reason.c_str()); }
  // Stops reading from the socket (the kernel buffers fill up).
  boost::beast::websocket::stream<boost::beast::tcp_stream>& stream() { return ws_; }

 private:
  WsClient();
  bool Write(const std::string& data, bool text);
  // Runs the io_context until `done` or `timeout`; cancels on timeout.
  bool RunUntil(const bool& done, absl::Duration timeout);

  boost::asio::io_context ioc_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  std::optional<int> close_code_;
  bool read_pending_ = false;
  bool read_done_ = false;
  boost::beast::error_code read_ec_;
};

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_WS_CLIENT_H_
