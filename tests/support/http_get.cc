#include "tests/support/http_get.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace chat::testing {

absl::StatusOr<HttpReply> HttpGet(const std::string& host, int port, const std::string& target,
                                  const std::map<std::string, std::string>& headers) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  using tcp = boost::asio::ip::tcp;
  try {
    boost::asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(tcp::endpoint(boost::asio::ip::make_address(host), port));
    http::request<http::empty_body> request(http::verb::get, target, 11);
    request.set(http::field::host, absl::StrCat(host, ":", port));
    for (const auto& [k, v] : headers) request.set(k, v);
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    HttpReply reply;
    reply.status = response.result_int();
    for (const auto& field : response) {
      reply.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
          std::string(field.value());
    }
    reply.body = std::move(response.body());
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return reply;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("GET ", target, ": ", e.what()));
  }
}

bool WaitReady(int port, bool ready, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  do {
    absl::StatusOr<HttpReply> r = HttpGet("127.0.0.1", port, "/readyz");
    if (r.ok() && (r->status == 200) == ready) return true;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < deadline);
  return false;
}

}  // namespace chat::testing
