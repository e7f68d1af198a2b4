#include "groupsvc/metrics.h"

#include <string>

namespace groupsvc {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddValue(prometheus::MetricFamily& f, double value,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

}  // namespace

std::vector<prometheus::MetricFamily> RegistryCollector::Collect() const {
  using prometheus::MetricType;
  const StatsSnapshot s = registry_->Stats();
  std::vector<prometheus::MetricFamily> out;
  auto gauge = [&](const char* name, const char* help, double v) {
    out.push_back(Family(name, help, MetricType::Gauge));
    AddValue(out.back(), v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    out.push_back(Family(name, help, MetricType::Counter));
    AddValue(out.back(), v);
  };
  gauge("groupsvc_groups", "Groups with at least one member.", s.groups);
  gauge("groupsvc_memberships", "Group memberships.", s.memberships);
  gauge("groupsvc_queued_channels", "Channels with queued events (no edge owns them).", s.channels);
  gauge("groupsvc_queued_events", "Undelivered events queued in groupsvc.", s.queued_events);
  gauge("groupsvc_attached_edges", "Edges attached by a stream.", s.attached_edges);
  gauge("groupsvc_attach_streams", "Open Attach streams.", streams_->size());
  counter("groupsvc_stream_messages_in_total", "Messages read from edges' Attach streams.",
          streams_->messages_in());
  counter("groupsvc_stream_messages_out_total", "Messages written to edges' Attach streams.",
          streams_->messages_out());
  counter("groupsvc_events_in_total", "Events accepted by send and group_send.", s.events_in);
  counter("groupsvc_events_out_total", "Copies handed to channels (queued or streamed).",
          s.events_out);
  counter("groupsvc_stream_deliveries_total",
          "Delivery messages put on edge streams: one per edge per group_send.",
          s.stream_deliveries);
  counter("groupsvc_unsettled_group_sends_total",
          "group_sends acked unsettled: the group may have had members groupsvc could not see "
          "(warm-up after start, or an edge lost and not yet replayed).",
          s.unsettled_group_sends);
  gauge("groupsvc_lost_edges", "Lost edges whose groups are unsettled until they replay.",
        s.lost_edges);
  out.push_back(Family("groupsvc_drops_total", "Copies dropped, by reason.", MetricType::Counter));
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    AddValue(out.back(), s.drops[i],
             {{"reason", std::string(DropReasonName(static_cast<DropReason>(i)))}});
  }
  if (guard_ != nullptr) {
    out.push_back(Family("groupsvc_api_calls_total",
                         "Unary API calls by authorization result (ok, unauthenticated, "
                         "permission_denied, rate_limited) and token name.",
                         MetricType::Counter));
    for (const auto& [key, n] : guard_->CallCounts()) {
      AddValue(out.back(), n, {{"result", key.first}, {"token", key.second}});
    }
    out.push_back(Family("groupsvc_attach_refused_total",
                         "Attach streams refused for their client certificate, by reason "
                         "(no_certificate, identity).",
                         MetricType::Counter));
    for (const auto& [reason, n] : guard_->AttachRefusals()) {
      AddValue(out.back(), n, {{"reason", reason}});
    }
  }
  return out;
}

}  // namespace groupsvc
