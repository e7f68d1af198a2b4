// EdgeMetrics: the edge's Prometheus metrics, served at /metrics on the
// metrics port (--metrics_listen, not the pages' and WebSockets' port):
// connections, frames in and out, drops and refusals by reason, groups, link state.
//
//   EdgeMetrics metrics([&] { return layer.ready(); }, [&] { return layer.local_groups(); });
//   metrics.frames_in().Increment();
//   std::string text = metrics.Render();
//
// Thread-safe (prometheus-cpp's metrics are atomic).
#ifndef CHAT_EDGE_NET_METRICS_H_
#define CHAT_EDGE_NET_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace edge {

class EdgeMetrics {
 public:
  EdgeMetrics(std::function<bool()> link_up, std::function<size_t()> groups);

  prometheus::Gauge& connections() { return connections_; }
  prometheus::Counter& connections_total() { return connections_total_; }
  prometheus::Counter& frames_in() { return frames_in_; }
  prometheus::Counter& frames_out() { return frames_out_; }
  // Writes to client sockets: frames_out / socket_writes is the batching.
  prometheus::Counter& socket_writes() { return socket_writes_; }
  // Reasons: slow_reader, write_timeout, frame_timeout, not_delivered, unconfirmed,
  // bad_frame, no_handler, no_message, too_big, binary_frame, protocol_error.
  prometheus::Counter& drops(const std::string& reason);
  // Connections turned away: before any request, max_connections,
  // max_per_address, or evicted (a pending one closed to make room); at the
  // upgrade, user_cap (HTTP 429, --max_connections_per_user) or busy (HTTP
  // 503: the user could not be counted, the link or groupsvc being full).
  prometheus::Counter& refused(const std::string& reason);
  // HTTP requests answered with an error status before an upgrade (400, 403, 404, 426).
  prometheus::Counter& http_errors(const std::string& status);
  // Upgrades by identity: result "user" (a valid token), "anonymous", or
  // "refused" with the reason (missing, invalid, expired, room).
  prometheus::Counter& auth(const std::string& result, const std::string& reason = "");
  // Reported at each Render: TCP connections held and those still sending a request.
  void SetConnectionCounts(std::function<std::pair<size_t, size_t>()> counts) {
    tcp_counts_ = std::move(counts);
  }
  // Reported at each Render as edge_layer_shard_up{shard, target}: each
  // groupsvc shard's link, in shard order (target, up).
  void SetShardStates(std::function<std::vector<std::pair<std::string, bool>>()> states) {
    shard_states_ = std::move(states);
  }
  std::string Render();

 private:
  std::function<bool()> link_up_;
  std::function<size_t()> groups_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge& connections_;
  prometheus::Counter& connections_total_;
  prometheus::Counter& frames_in_;
  prometheus::Counter& frames_out_;
  prometheus::Counter& socket_writes_;
  prometheus::Family<prometheus::Counter>& drops_;
  prometheus::Family<prometheus::Counter>& refused_;
  prometheus::Family<prometheus::Counter>& http_errors_;
  prometheus::Family<prometheus::Counter>& auth_;
  std::function<std::pair<size_t, size_t>()> tcp_counts_;
  std::function<std::vector<std::pair<std::string, bool>>()> shard_states_;
  prometheus::Gauge& tcp_gauge_;
  prometheus::Gauge& pending_gauge_;
  prometheus::Gauge& link_up_gauge_;
  prometheus::Family<prometheus::Gauge>& shard_up_;
  prometheus::Gauge& groups_gauge_;
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_METRICS_H_
