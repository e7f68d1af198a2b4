#include "edge/net/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace edge {

namespace {

prometheus::Gauge& Gauge(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}
prometheus::Counter& Counter(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

}  // namespace

EdgeMetrics::EdgeMetrics(std::function<bool()> link_up, std::function<size_t()> groups)
    : link_up_(std::move(link_up)),
      groups_(std::move(groups)),
      registry_(std::make_shared<prometheus::Registry>()),
      connections_(Gauge(*registry_, "edge_connections", "Open WebSocket connections.")),
      connections_total_(Counter(*registry_, "edge_connections_total", "Accepted WebSockets.")),
      frames_in_(Counter(*registry_, "edge_frames_in_total", "Frames received from clients.")),
      frames_out_(Counter(*registry_, "edge_frames_out_total", "Frames sent to clients.")),
      socket_writes_(Counter(*registry_, "edge_socket_writes_total",
                             "Writes to client sockets, each with every frame queued for it.")),
      drops_(prometheus::BuildCounter()
                 .Name("edge_drops_total")
                 .Help("Frames or events dropped, by reason.")
                 .Register(*registry_)),
      refused_(prometheus::BuildCounter()
                   .Name("edge_connections_refused_total")
                   .Help("TCP connections turned away before their request, by reason.")
                   .Register(*registry_)),
      http_errors_(prometheus::BuildCounter()
                       .Name("edge_http_errors_total")
                       .Help("Requests answered with an error status, by status.")
                       .Register(*registry_)),
      auth_(prometheus::BuildCounter()
                .Name("edge_auth_total")
                .Help("WebSocket upgrades by identity: user, anonymous, or refused by reason.")
                .Register(*registry_)),
      tcp_gauge_(Gauge(*registry_, "edge_tcp_connections", "Client TCP connections held.")),
      pending_gauge_(Gauge(*registry_, "edge_tcp_pending",
                           "Client TCP connections whose HTTP request has not arrived whole.")),
      link_up_gauge_(Gauge(*registry_, "edge_layer_up", "1 while the channel layer is reachable.")),
      shard_up_(prometheus::BuildGauge()
                    .Name("edge_layer_shard_up")
                    .Help("1 while the link to this groupsvc shard is attached.")
                    .Register(*registry_)),
      groups_gauge_(Gauge(*registry_, "edge_groups", "Groups with members on this edge.")) {
  for (const char* reason :
       {"slow_reader", "write_timeout", "frame_timeout", "not_delivered", "unconfirmed",
        "bad_frame", "no_handler", "too_big", "binary_frame", "protocol_error"}) {
    drops_.Add({{"reason", reason}});
  }
  for (const char* reason : {"max_connections", "max_per_address", "evicted"}) {
    refused_.Add({{"reason", reason}});
  }
}

prometheus::Counter& EdgeMetrics::drops(const std::string& reason) {
  return drops_.Add({{"reason", reason}});
}

prometheus::Counter& EdgeMetrics::refused(const std::string& reason) {
  return refused_.Add({{"reason", reason}});
}

prometheus::Counter& EdgeMetrics::auth(const std::string& result, const std::string& reason) {
  if (reason.empty()) return auth_.Add({{"result", result}});
  return auth_.Add({{"result", result}, {"reason", reason}});
}

prometheus::Counter& EdgeMetrics::http_errors(const std::string& status) {
  return http_errors_.Add({{"status", status}});
}

std::string EdgeMetrics::Render() {
  if (tcp_counts_) {
    auto [held, pending] = tcp_counts_();
    tcp_gauge_.Set(static_cast<double>(held));
    pending_gauge_.Set(static_cast<double>(pending));
  }
  link_up_gauge_.Set(link_up_() ? 1 : 0);
  if (shard_states_) {
    std::vector<std::pair<std::string, bool>> states = shard_states_();
    for (size_t i = 0; i < states.size(); ++i) {
      shard_up_.Add({{"shard", std::to_string(i)}, {"target", states[i].first}})
          .Set(states[i].second ? 1 : 0);
    }
  }
  groups_gauge_.Set(static_cast<double>(groups_()));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace edge
