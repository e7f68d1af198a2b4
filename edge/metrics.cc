#include "edge/metrics.h"

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
      link_up_gauge_(Gauge(*registry_, "edge_layer_up", "1 while the channel layer is reachable.")),
      groups_gauge_(Gauge(*registry_, "edge_groups", "Groups with members on this edge.")) {
  for (const char* reason : {"slow_reader", "not_delivered", "bad_frame", "no_handler", "too_big",
                             "binary_frame", "protocol_error"}) {
    drops_.Add({{"reason", reason}});
  }
}

prometheus::Counter& EdgeMetrics::drops(const std::string& reason) {
  return drops_.Add({{"reason", reason}});
}

std::string EdgeMetrics::Render() {
  link_up_gauge_.Set(link_up_() ? 1 : 0);
  groups_gauge_.Set(static_cast<double>(groups_()));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace edge
