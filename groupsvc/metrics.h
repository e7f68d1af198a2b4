// RegistryCollector: exposes GroupRegistry's counters to Prometheus at scrape
// time, so that nothing on the hot path counts twice.
//
//   auto collector = std::make_shared<RegistryCollector>(&registry);
//   exposer.RegisterCollectable(collector);
#ifndef CHAT_GROUPSVC_METRICS_H_
#define CHAT_GROUPSVC_METRICS_H_

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <functional>
#include <vector>

#include "groupsvc/group_registry.h"

namespace groupsvc {

class RegistryCollector : public prometheus::Collectable {
 public:
  // `streams` reports the number of open Attach streams.
  RegistryCollector(const GroupRegistry* registry, std::function<size_t()> streams)
      : registry_(registry), streams_(std::move(streams)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const GroupRegistry* const registry_;
  const std::function<size_t()> streams_;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_METRICS_H_
