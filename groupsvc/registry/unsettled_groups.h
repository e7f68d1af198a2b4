// UnsettledGroups: which groups may have members the registry cannot see,
// so that a group_send to them is reported `unsettled`: every group during
// `warmup` after start (edges are re-attaching and replaying), and, for
// `unsettled_window` after an edge's stream was lost, each group that edge had
// members in, until that edge's replay is applied (ReplayApplied).
//
// Thread-safe. Its lock is a leaf. When nothing is unsettled (the normal
// case), Unsettled takes no lock.
#ifndef CHAT_GROUPSVC_REGISTRY_UNSETTLED_GROUPS_H_
#define CHAT_GROUPSVC_REGISTRY_UNSETTLED_GROUPS_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupsvc {

struct UnsettledOptions {
  absl::Duration warmup = absl::Seconds(3);
  absl::Duration window = absl::Seconds(5);
  // Lost edges tracked one by one; beyond this many, every group is unsettled
  // until the window of the latest loss has passed.
  size_t max_lost_edges = 256;
};

class UnsettledGroups {
 public:
  UnsettledGroups(UnsettledOptions options, absl::Time start);
  UnsettledGroups(const UnsettledGroups&) = delete;
  UnsettledGroups& operator=(const UnsettledGroups&) = delete;

  // Records (or extends) the loss of `edge_id`'s members in `groups`; a
  // replay by a stream of at least generation `settled_by` settles them.
  // Called before the memberships go, so that a group_send that no longer
  // sees them sees the record.
  void MarkLost(absl::string_view edge_id, absl::flat_hash_set<std::string> groups,
                uint64_t settled_by, absl::Time now);
  // Adds groups to a loss already recorded (joined meanwhile).
  void AddLostGroups(absl::string_view edge_id, absl::flat_hash_set<std::string> groups);
  void ReplayApplied(absl::string_view edge_id, uint64_t generation);
  bool Unsettled(absl::string_view group, absl::Time now) const;
  // Forgets losses whose window has passed.
  void Sweep(absl::Time now);
  size_t lost_edges() const;

 private:
  struct LostEdge {
    absl::flat_hash_set<std::string> groups;
    absl::Time until;
    uint64_t settled_by = 0;
  };

  const UnsettledOptions options_;
  const absl::Time warmup_until_;
  // False once the warm-up has passed, so that group_sends skip its check.
  mutable std::atomic<bool> warming_up_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, LostEdge> lost_ ABSL_GUARDED_BY(mu_);
  // Set when more than max_lost_edges are lost at once.
  absl::Time all_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // lost_.size(), plus one while all_until_ is set: read without the lock.
  std::atomic<size_t> entries_{0};
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_UNSETTLED_GROUPS_H_
