// RecentRefusals: the WebSocket upgrades this edge refused lately, by the
// attempt's id, so that a browser can read back why. The WebSocket API shows a
// refused upgrade only as a close with 1006, hiding its HTTP status and body;
// the edge's room page names each attempt (?attempt=<random id> on the
// WebSocket URL) and, when a socket never opened, asks GET
// /ws/refused?attempt=<id> ("too many connections for this account: close one
// first"). An id is random and used once, so a page reads only its own
// refusal; a request without one is not kept (programs read the body).
//
// Bounded: at most `capacity` refusals, each for `ttl`, reasons clipped to
// kMaxReason bytes; the oldest go first.
// Threading: any thread; one mutex (refusals are rare, reading them rarer).
#ifndef CHAT_EDGE_NET_RECENT_REFUSALS_H_
#define CHAT_EDGE_NET_RECENT_REFUSALS_H_

#include <deque>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shared/clock.h"

namespace edge {

class RecentRefusals {
 public:
  struct Refusal {
    int status = 0;
    std::string reason;  // The refusal's body: one line for people.
    absl::Time at;
  };
  static constexpr size_t kMaxReason = 300;

  explicit RecentRefusals(size_t capacity = 4096, absl::Duration ttl = absl::Minutes(1),
                          const chat::Clock* clock = chat::RealClock::Default());

  // The attempt id in a request's query (`attempt`: 16 to 64 of [A-Za-z0-9_-]),
  // or empty when there is none or it is malformed.
  static std::string AttemptOf(absl::string_view query);

  // Keeps a refusal of attempt `id` (nothing for an empty id).
  void Record(const std::string& id, int status, absl::string_view reason);
  // The refusal of attempt `id`, if kept and within the ttl.
  std::optional<Refusal> Find(const std::string& id) const;
  absl::Time Now() const { return clock_->Now(); }

 private:
  const size_t capacity_;
  const absl::Duration ttl_;
  const chat::Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Refusal> latest_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // Ids, oldest first; one each.
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_RECENT_REFUSALS_H_
