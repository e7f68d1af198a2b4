// RecentRefusals: the WebSocket upgrades this edge refused lately, by who
// asked (a signed-in user's id, or an anonymous client's address), so that a
// browser can read back why. The WebSocket API shows a refused upgrade only as
// a close with 1006, hiding its HTTP status and body; the edge's room page
// asks GET /ws/refused after a connect that never opened and shows the answer
// ("too many connections for this account: close one first").
//
// An anonymous client's refusals are kept by its address, so people behind one
// NAT may read each other's; those never name a user (a refusal that does, the
// user cap, is kept by that user's id and read back with their token).
//
// Bounded: at most `capacity` refusals, each for `ttl`; the oldest go first.
// Threading: any thread; one mutex (refusals are rare, reading them rarer).
#ifndef CHAT_EDGE_NET_RECENT_REFUSALS_H_
#define CHAT_EDGE_NET_RECENT_REFUSALS_H_

#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
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

  explicit RecentRefusals(size_t capacity = 4096, absl::Duration ttl = absl::Minutes(1),
                          const chat::Clock* clock = chat::RealClock::Default());

  static std::string UserKey(const std::string& user_id) { return "user " + user_id; }
  static std::string AddressKey(const std::string& address) { return "address " + address; }

  void Record(const std::string& key, int status, std::string reason);
  // The latest refusal recorded under `key` within the ttl.
  std::optional<Refusal> Find(const std::string& key) const;

 private:
  const size_t capacity_;
  const absl::Duration ttl_;
  const chat::Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Refusal> latest_ ABSL_GUARDED_BY(mu_);
  // Keys in the order recorded (a key recorded again is here twice; only its
  // latest entry, the one whose time matches, removes it).
  std::deque<std::pair<std::string, absl::Time>> order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_RECENT_REFUSALS_H_
