// EdgeContext: what every session of one edge process shares: options, the
// layer, the router, metrics, and the set of live WebSocket sessions (weak
// references, so that shutdown can close them all).
#ifndef CHAT_EDGE_EDGE_CONTEXT_H_
#define CHAT_EDGE_EDGE_CONTEXT_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "edge/layer.h"
#include "edge/metrics.h"
#include "edge/router.h"

namespace edge {

class WebSocketSession;

struct EdgeOptions {
  // Larger client frames close the connection with 1009.
  size_t max_frame_bytes = 64 << 10;
  // A client whose outgoing queue passes either bound is closed with 1013.
  size_t max_queue_frames = 1024;
  size_t max_queue_bytes = 4 << 20;
  absl::Duration handshake_timeout = absl::Seconds(10);
  // A client silent for half of it is pinged; one silent for all of it (at
  // most one and a half) is dropped.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Origins allowed besides the request's own host: "https://chat.example.com",
  // ".example.com" (any subdomain) or "*".
  std::vector<std::string> allowed_origins;
  bool log_connections = false;
};

class SessionSet {
 public:
  void Add(const std::shared_ptr<WebSocketSession>& session);
  void Remove(const WebSocketSession* session);
  // Closes every session with `code` (from any thread).
  void CloseAll(uint16_t code);
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<const WebSocketSession*, std::weak_ptr<WebSocketSession>> sessions_
      ABSL_GUARDED_BY(mu_);
};

struct EdgeContext {
  EdgeOptions options;
  // Set when one thread runs the I/O context: sessions then need no strand, and
  // the events one fan-out hands to many sessions share one handler.
  boost::asio::io_context* serial_ioc = nullptr;
  Layer* layer = nullptr;
  Router* router = nullptr;
  EdgeMetrics* metrics = nullptr;
  SessionSet sessions;
  std::atomic<bool> shutting_down{false};
};

}  // namespace edge

#endif  // CHAT_EDGE_EDGE_CONTEXT_H_
