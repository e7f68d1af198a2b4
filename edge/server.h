// EdgeServer: an edge process wired up: the I/O threads, the listener, the
// layer (GrpcLayer when a groupsvc address is given, MemoryLayer otherwise),
// the router with the tutorial's consumers, and metrics. main() and the tests
// start it this way.
//
//   auto edge = EdgeServer::Start(options);
//   ... (*edge)->port() ...
//   (*edge)->Shutdown(absl::Seconds(10));
#ifndef CHAT_EDGE_SERVER_H_
#define CHAT_EDGE_SERVER_H_

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "edge/edge_context.h"
#include "edge/layer.h"
#include "edge/listener.h"
#include "edge/metrics.h"
#include "edge/router.h"

namespace edge {

struct EdgeServerOptions {
  std::string listen = "0.0.0.0:8000";  // Port 0 picks a free one.
  std::string groupsvc;                 // Empty: the in-process layer.
  std::string edge_id;                  // Defaults to the host name.
  int threads = 1;
  EdgeOptions edge;
};

class EdgeServer {
 public:
  static absl::StatusOr<std::unique_ptr<EdgeServer>> Start(EdgeServerOptions options);
  ~EdgeServer();

  int port() const { return listener_->port(); }
  Layer& layer() { return *layer_; }
  const std::string& edge_id() const { return options_.edge_id; }

  // Stops accepting, closes every WebSocket with 1001 (their groups are left),
  // waits for them up to `grace`, then stops. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  explicit EdgeServer(EdgeServerOptions options);

  EdgeServerOptions options_;
  boost::asio::io_context ioc_;
  std::unique_ptr<Layer> layer_;
  Router router_;
  std::unique_ptr<EdgeMetrics> metrics_;
  EdgeContext context_;
  std::shared_ptr<Listener> listener_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

}  // namespace edge

#endif  // CHAT_EDGE_SERVER_H_
