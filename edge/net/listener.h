// Listener: accepts TCP connections on loop 0 of the edge's IoPool and pins
// each to the next loop in turn, where its HttpSession (and, after an upgrade,
// its WebSocketSession) runs for the connection's life. When accept fails
// (e.g. out of file descriptors) it waits a little instead of spinning. The
// public port serves everything; the metrics port only /metrics and /healthz.
//
//   auto listener = Listener::Bind(pool, endpoint, context, Listener::Serves::kEverything);
//   (*listener)->Run();
#ifndef CHAT_EDGE_NET_LISTENER_H_
#define CHAT_EDGE_NET_LISTENER_H_

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "absl/status/statusor.h"
#include "edge/net/edge_context.h"
#include "edge/net/io_pool.h"

namespace edge {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  enum class Serves { kEverything, kMetrics };

  static absl::StatusOr<std::shared_ptr<Listener>> Bind(std::shared_ptr<IoPool> pool,
                                                        boost::asio::ip::tcp::endpoint endpoint,
                                                        std::shared_ptr<EdgeContext> context,
                                                        Serves serves);
  void Run();
  void Stop();  // Any thread.
  int port() const { return port_; }

 private:
  Listener(std::shared_ptr<IoPool> pool, std::shared_ptr<EdgeContext> context, Serves serves);
  void DoAccept();

  const std::shared_ptr<IoPool> pool_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  const std::shared_ptr<EdgeContext> context_;
  const Serves serves_;
  int port_ = 0;
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_LISTENER_H_
