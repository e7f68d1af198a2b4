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

#include "groupsvc/registry/group_registry.h"
#include "groupsvc/rpc/attach_stream.h"
#include "groupsvc/security/api_guard.h"

namespace groupsvc {

class RegistryCollector : public prometheus::Collectable {
 public:
  // `streams`: the Attach streams, open ones and messages on them. `guard`
  // (may be null): the API's authorization decisions.
  RegistryCollector(const GroupRegistry* registry, const StreamSet* streams,
                    const ApiGuard* guard = nullptr)
      : registry_(registry), streams_(streams), guard_(guard) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const GroupRegistry* const registry_;
  const StreamSet* const streams_;
  const ApiGuard* const guard_;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_METRICS_H_
