// QueueQuota: the bytes of undelivered events one caller (an API token, an
// edge, or a client address) has queued in groupsvc, against a limit, so that
// one caller cannot fill --max_queued_bytes for everyone.
//
// The registry charges an event's size when it queues a copy on a channel no
// edge owns (Send, GroupSend) and refunds it when the copy leaves the queue
// (received, expired, flushed). Copies for edges' channels are bounded per
// edge by --edge_queue_bytes instead.
//
//   auto quota = std::make_shared<QueueQuota>("token:backend", 32 << 20);
//   if (!quota->TryCharge(n)) return absl::ResourceExhaustedError(...);
//   quota->Refund(n);
//
// Thread-safe (one atomic counter).
// Lifetime: shared; the ApiGuard (per token or address) or the AttachStream
// (per edge) holds it, and every charged copy's owner refunds it.
#ifndef CHAT_GROUPSVC_REGISTRY_QUEUE_QUOTA_H_
#define CHAT_GROUPSVC_REGISTRY_QUEUE_QUOTA_H_

#include <atomic>
#include <cstddef>
#include <string>

namespace groupsvc {

class QueueQuota {
 public:
  // `limit` 0: no limit (only counted).
  QueueQuota(std::string owner, size_t limit) : owner_(std::move(owner)), limit_(limit) {}

  // Adds `bytes` unless that would pass the limit.
  bool TryCharge(size_t bytes) {
    size_t held = bytes_.load(std::memory_order_relaxed);
    do {
      if (limit_ != 0 && held + bytes > limit_) return false;
    } while (!bytes_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
    return true;
  }
  void Refund(size_t bytes) { bytes_.fetch_sub(bytes, std::memory_order_relaxed); }

  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t limit() const { return limit_; }
  const std::string& owner() const { return owner_; }

 private:
  const std::string owner_;
  const size_t limit_;
  std::atomic<size_t> bytes_{0};
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_QUEUE_QUOTA_H_
