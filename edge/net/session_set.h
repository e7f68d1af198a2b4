// SessionSet: the edge's open WebSocket sessions, for what acts on all of
// them: shutdown (close every one, wait for the close frames to go out), the
// write-timeout check and the token-expiry check.
//
// Thread-safe. Holds weak references: a session lives by its own operations
// (see websocket_session.h) and removes itself when it finishes. Sessions
// are acted on outside the lock (each posts onto its own loop).
#ifndef CHAT_EDGE_NET_SESSION_SET_H_
#define CHAT_EDGE_NET_SESSION_SET_H_

#include <chrono>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace edge {

class WebSocketSession;

class SessionSet {
 public:
  void Add(const std::shared_ptr<WebSocketSession>& session);
  void Remove(const WebSocketSession* session);
  // Closes every session with `code` (from any thread).
  void CloseAll(uint16_t code);
  // A session's close frame became due (+1), or went out or was given up
  // (-1); a session removed while its close frame is going out still counts
  // until it is out or cut.
  void CountUnsent(int change);
  // Wait (bounded) until every close frame is out, or no session is left;
  // false when the deadline came first. For shutdown.
  bool AwaitClosesSent(absl::Time deadline) const;
  bool AwaitEmpty(absl::Time deadline) const;
  // Closes (1013) every session with a write in flight since before `cutoff`.
  void CloseStalledWriters(std::chrono::steady_clock::time_point cutoff);
  // Closes with 4001 every connection whose user's token has expired by `now`.
  void CloseExpired(absl::Time now);

 private:
  mutable absl::Mutex mu_;
  // Counted, not walked: a waiter's condition is checked on every unlock.
  // Signed: a session's -1 may take the lock before its +1 from another thread.
  int64_t unsent_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<const WebSocketSession*, std::weak_ptr<WebSocketSession>> sessions_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_SESSION_SET_H_
