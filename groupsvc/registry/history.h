// History: the latest events of each group, numbered by the group's offset
// (1, 2, 3, ... per group) under one epoch, so that a client that saw offset
// N can ask for what came after it and learn whether it got all of it.
//
// The epoch is chosen at random when the process starts: a restart, or a new
// owner shard, loses the history, and a client asking with the old epoch is
// told it could not recover (as Centrifugo's epoch does). Each group keeps at
// most `per_group` events, each for `ttl`; all groups together at most
// `max_bytes` (the oldest events anywhere go first). A group whose events are
// all gone is forgotten by Sweep, so that the groups kept are bounded by the
// events kept; when it is sent to again it numbers from 1 under an epoch of
// its own (the process's plus a generation), which tells a client that held
// an offset of its earlier numbering that it cannot recover.
//
//   History history({.per_group = 100}, "x7k2");
//   uint64_t offset = history.Append("chat_lobby", event, now);
//   HistoryPage page = history.Since("chat_lobby", 41, "x7k2", 50, now);
//   if (!page.recovered) ... show page.events as "the latest", not as "what you missed"
//
// Thread-safe (one mutex; Append is O(1) amortized).
#ifndef CHAT_GROUPSVC_REGISTRY_HISTORY_H_
#define CHAT_GROUPSVC_REGISTRY_HISTORY_H_

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "groupsvc/registry/event.h"

namespace groupsvc {

struct HistoryOptions {
  size_t per_group = 100;  // 0: no history.
  absl::Duration ttl = absl::Minutes(10);
  size_t max_bytes = 64 << 20;
};

struct HistoryEntry {
  uint64_t offset = 0;
  EventPtr event;
  absl::Time time;
};

// What a client asks for: the events after `since` (seen under `epoch`), or
// with `latest` the newest ones; at most `limit` (0: per_group) and about
// `max_bytes` (0: no bound; at least one event).
struct HistoryQuery {
  uint64_t since = 0;
  std::string epoch;
  size_t limit = 0;
  bool latest = false;
  size_t max_bytes = 0;
};

struct HistoryPage {
  std::string epoch;
  // After `since` in order when recovered; else the latest events.
  std::vector<HistoryEntry> events;
  // True when the epoch is this one and nothing after `since` is gone.
  bool recovered = false;
  // The group's latest offset (0: none yet).
  uint64_t latest = 0;
};

class History {
 public:
  History(HistoryOptions options, std::string epoch);

  const std::string& epoch() const { return epoch_; }
  // The event's offset in its group; 0 with history off. `epoch`, if set,
  // gets the group's epoch when it is not epoch() (else is cleared).
  uint64_t Append(absl::string_view group, const EventPtr& event, absl::Time now,
                  std::string* epoch = nullptr);
  HistoryPage Since(absl::string_view group, const HistoryQuery& query, absl::Time now);
  // At most `limit` events (0: per_group).
  HistoryPage Since(absl::string_view group, uint64_t since, absl::string_view epoch, size_t limit,
                    absl::Time now) {
    return Since(group, HistoryQuery{since, std::string(epoch), limit}, now);
  }
  void Clear();
  // Drops expired events and forgets the groups left without any (at most
  // once per `ttl` / 10, as it walks every group).
  void Sweep(absl::Time now);
  size_t bytes() const;
  size_t groups() const;

 private:
  struct Ring {
    std::deque<HistoryEntry> entries;
    uint64_t latest = 0;
    std::string epoch;  // Empty: epoch_.
  };
  // The epoch a group created now gets.
  std::string NewRingEpochLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::string& EpochOf(const Ring& ring) const {
    return ring.epoch.empty() ? epoch_ : ring.epoch;
  }
  void ExpireLocked(Ring& ring, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictOldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropFrontLocked(Ring& ring) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const HistoryOptions options_;
  const std::string epoch_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Ring> groups_ ABSL_GUARDED_BY(mu_);
  // Groups forgotten so far: a group created after the n-th has epoch
  // "<epoch_>-<n>", so a forgotten group's new numbering never shares an epoch
  // with its old one.
  uint64_t forgotten_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Every retained event, oldest first, for the byte bound: (group, offset).
  std::deque<std::pair<std::string, uint64_t>> order_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_HISTORY_H_
