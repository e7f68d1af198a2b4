#include "tests/support/ws_client.h"

#include <boost/asio/ip/tcp.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace chat::testing {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;

WsClient::WsClient() : ws_(ioc_) {}

absl::StatusOr<std::unique_ptr<WsClient>> WsClient::Connect(
    int port, const std::string& path, const std::map<std::string, std::string>& headers,
    const std::string& host) {
  std::unique_ptr<WsClient> c(new WsClient());
  beast::error_code ec;
  beast::get_lowest_layer(c->ws_).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(c->ws_).connect(net::ip::tcp::endpoint(net::ip::make_address(host), port),
                                          ec);
  if (ec) return absl::UnavailableError(absl::StrCat("connect: ", ec.message()));
  c->ws_.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    for (const auto& [k, v] : headers) req.set(k, v);
  }));
  c->ws_.read_message_max(64 << 20);
  websocket::response_type response;
  bool done = false;
  c->ws_.async_handshake(response, absl::StrCat(host, ":", port), path, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  if (!c->RunUntil(done, absl::Seconds(10))) return absl::DeadlineExceededError("handshake");
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("handshake refused: HTTP ",
                                                      response.result_int(), " ", ec.message(),
                                                      ": ", response.body()));
  }
  beast::get_lowest_layer(c->ws_).expires_never();
  return c;
}

int WsClient::RefusedStatus(const absl::Status& status) {
  const std::string m(status.message());
  size_t at = m.find("HTTP ");
  int code = 0;
  if (at != std::string::npos && absl::SimpleAtoi(m.substr(at + 5, 3), &code)) return code;
  return 0;
}

bool WsClient::RunUntil(const bool& done, absl::Duration timeout) {
  ioc_.restart();
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    ioc_.run_one_until(deadline);
  }
  return done;
}

bool WsClient::Write(const std::string& data, bool text) {
  // Asynchronous, so that a pending read can take a close frame meanwhile.
  ws_.text(text);
  bool done = false;
  beast::error_code ec;
  ws_.async_write(net::buffer(data), [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  if (!RunUntil(done, absl::Seconds(10))) {
    beast::get_lowest_layer(ws_).cancel();
    RunUntil(done, absl::Seconds(5));
    return false;
  }
  return !ec;
}

bool WsClient::SendText(const std::string& text) { return Write(text, true); }

bool WsClient::SendBinary(const std::string& bytes) { return Write(bytes, false); }

absl::StatusOr<std::string> WsClient::Read(absl::Duration timeout) {
  if (close_code_.has_value()) return absl::NotFoundError("closed");
  if (!read_pending_) {
    read_pending_ = true;
    read_done_ = false;
    ws_.async_read(buffer_, [this](beast::error_code ec, size_t) {
      read_ec_ = ec;
      read_done_ = true;
    });
  }
  if (!read_done_ && !RunUntil(read_done_, timeout)) {
    return absl::DeadlineExceededError("no frame in time");  // The read stays pending.
  }
  read_pending_ = false;
  if (read_ec_ == websocket::error::closed) {
    close_code_ = ws_.reason().code;
    return absl::NotFoundError(absl::StrCat("closed with ", *close_code_));
  }
  if (read_ec_ && ws_.reason().code != websocket::close_code::none) {
    // The close frame arrived, though answering it failed (the server may
    // already have closed the socket, as Beast does after 1009).
    close_code_ = ws_.reason().code;
    return absl::NotFoundError(absl::StrCat("closed with ", *close_code_));
  }
  if (read_ec_) {
    close_code_ = 1006;
    return absl::NotFoundError(absl::StrCat("connection lost: ", read_ec_.message()));
  }
  std::string text = beast::buffers_to_string(buffer_.data());
  buffer_.consume(buffer_.size());
  return text;
}

std::optional<int> WsClient::WaitClosed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!close_code_.has_value() && absl::Now() < deadline) {
    (void)Read(deadline - absl::Now());
  }
  return close_code_;
}

void WsClient::Close() {
  if (close_code_.has_value()) return;
  bool done = false;
  ws_.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
  RunUntil(done, absl::Seconds(5));
  close_code_ = 1000;
}

}  // namespace chat::testing
