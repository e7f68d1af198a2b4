// Listener: accepts TCP connections and starts an HttpSession for each, on its
// own strand unless one thread runs the io_context (context->serial_ioc; a
// strand would then only add a lock and a queue to every handler). When accept fails (e.g. out of
// file descriptors) it waits a little instead of spinning. The public port
// serves everything; the metrics port only /metrics and /healthz.
//
//   auto listener = Listener::Bind(ioc, endpoint, context, Listener::Serves::kEverything);
//   (*listener)->Run();
#ifndef CHAT_EDGE_LISTENER_H_
#define CHAT_EDGE_LISTENER_H_

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "absl/status/statusor.h"
#include "edge/edge_context.h"

namespace edge {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  enum class Serves { kEverything, kMetrics };

  static absl::StatusOr<std::shared_ptr<Listener>> Bind(boost::asio::io_context& ioc,
                                                        boost::asio::ip::tcp::endpoint endpoint,
                                                        std::shared_ptr<EdgeContext> context,
                                                        Serves serves);
  void Run();
  void Stop();  // Any thread.
  int port() const { return port_; }

 private:
  Listener(boost::asio::io_context& ioc, std::shared_ptr<EdgeContext> context, Serves serves);
  void DoAccept();

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  const std::shared_ptr<EdgeContext> context_;
  const Serves serves_;
  int port_ = 0;
};

}  // namespace edge

#endif  // CHAT_EDGE_LISTENER_H_
