#include "edge/net/session_set.h"

#include <vector>

#include "edge/net/websocket_session.h"

namespace edge {

void SessionSet::Add(const std::shared_ptr<WebSocketSession>& session) {
  absl::MutexLock lock(&mu_);
  sessions_[session.get()] = session;
}

void SessionSet::Remove(const WebSocketSession* session) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(session);
}

void SessionSet::CloseAll(uint16_t code) {
  std::vector<std::shared_ptr<WebSocketSession>> live;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->CloseFromOutside(code);
}

void SessionSet::CountUnsent(int change) {
  absl::MutexLock lock(&mu_);
  unsent_ += change;
}

bool SessionSet::AwaitClosesSent(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto sent = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return unsent_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&sent), deadline);
}

bool SessionSet::AwaitEmpty(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto empty = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return sessions_.empty(); };
  return mu_.AwaitWithDeadline(absl::Condition(&empty), deadline);
}

void SessionSet::CloseStalledWriters(std::chrono::steady_clock::time_point cutoff) {
  std::vector<std::shared_ptr<WebSocketSession>> stalled;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [ptr, weak] : sessions_) {
      auto s = weak.lock();
      if (s == nullptr) continue;
      auto since = s->writing_since();
      if (since.has_value() && *since < cutoff) stalled.push_back(std::move(s));
    }
  }
  for (auto& s : stalled) s->CloseIfWritingSince(cutoff);
}

void SessionSet::CloseExpired(absl::Time now) {
  std::vector<std::shared_ptr<WebSocketSession>> expired;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [ptr, weak] : sessions_) {
      auto s = weak.lock();
      if (s != nullptr && s->expires() <= now) expired.push_back(std::move(s));
    }
  }
  for (auto& s : expired) s->CloseIfExpired(now);
}

}  // namespace edge
