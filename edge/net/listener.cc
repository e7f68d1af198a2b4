#include "edge/net/listener.h"

#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "edge/net/http_session.h"
#include "shared/log.h"

namespace edge {

namespace net = boost::asio;

Listener::Listener(std::shared_ptr<IoPool> pool, std::shared_ptr<EdgeContext> context,
                   Serves serves)
    : pool_(std::move(pool)),
      acceptor_(pool_->context(0)),
      retry_(acceptor_.get_executor()),
      context_(std::move(context)),
      serves_(serves) {}

absl::StatusOr<std::shared_ptr<Listener>> Listener::Bind(std::shared_ptr<IoPool> pool,
                                                         net::ip::tcp::endpoint endpoint,
                                                         std::shared_ptr<EdgeContext> context,
                                                         Serves serves) {
  std::shared_ptr<Listener> l(new Listener(std::move(pool), std::move(context), serves));
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
  const size_t loop = pool_->Next();
  acceptor_.async_accept(
      pool_->context(loop),
      [self = shared_from_this(), loop](boost::system::error_code ec, net::ip::tcp::socket socket) {
        if (!self->acceptor_.is_open()) return;
        if (ec) {
          chat::LogEvent("accept_failed", {{"error", ec.message()}});
          self->retry_.expires_after(std::chrono::milliseconds(100));
          self->retry_.async_wait([self](boost::system::error_code e) {
            if (!e) self->DoAccept();
          });
          return;
        }
        std::make_shared<HttpSession>(std::move(socket), loop, self->context_,
                                      self->serves_ == Serves::kMetrics)
            ->Run();
        self->DoAccept();
      });
}

}  // namespace edge
