#include "edge/listener.h"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "absl/strings/str_cat.h"
#include "edge/http_session.h"
#include "shared/log.h"

namespace edge {

namespace net = boost::asio;

Listener::Listener(net::io_context& ioc, std::shared_ptr<EdgeContext> context, Serves serves)
    : ioc_(ioc),
      acceptor_(net::make_strand(ioc)),
      retry_(acceptor_.get_executor()),
      context_(std::move(context)),
      serves_(serves) {}

absl::StatusOr<std::shared_ptr<Listener>> Listener::Bind(net::io_context& ioc,
                                                         net::ip::tcp::endpoint endpoint,
                                                         std::shared_ptr<EdgeContext> context,
                                                         Serves serves) {
  std::shared_ptr<Listener> l(new Listener(ioc, std::move(context), serves));
  boost::system::error_code ec;
  l->acceptor_.open(endpoint.protocol(), ec);
  if (!ec) l->acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) l->acceptor_.bind(endpoint, ec);
  if (!ec) l->acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", endpoint.address().to_string(),
                                               ":", endpoint.port(), ": ", ec.message()));
  }
  l->port_ = l->acceptor_.local_endpoint().port();
  return l;
}

void Listener::Run() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] { self->DoAccept(); });
}

void Listener::Stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    self->retry_.cancel();
  });
}

void Listener::DoAccept() {
  net::any_io_executor executor = ioc_.get_executor();
  if (context_->serial_ioc == nullptr) executor = net::make_strand(ioc_);
  acceptor_.async_accept(executor, [self = shared_from_this()](boost::system::error_code ec,
                                                               net::ip::tcp::socket socket) {
    if (!self->acceptor_.is_open()) return;
    if (ec) {
      chat::LogEvent("accept_failed", {{"error", ec.message()}});
      self->retry_.expires_after(std::chrono::milliseconds(100));
      self->retry_.async_wait([self](boost::system::error_code e) {
        if (!e) self->DoAccept();
      });
      return;
    }
    std::make_shared<HttpSession>(std::move(socket), self->context_,
                                  self->serves_ == Serves::kMetrics)
        ->Run();
    self->DoAccept();
  });
}

}  // namespace edge
