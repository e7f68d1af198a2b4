// Admission: how many client connections the edge holds, in all and per client
// address, so that no client and no flood can take every file descriptor.
//
// Each accepted connection holds a Ticket for its life. While its HTTP request
// is still arriving it is "pending", in arrival order; when the edge is full,
// the oldest pending connection is evicted to make room for a new one, so a
// slowloris flood (connections that never finish a request) only churns
// itself while whole requests, health checks included, still get in. A
// connection over the per-address cap, or over the cap with nothing pending
// to evict, is refused (the listener answers HTTP 503).
//
//   Admission admission({.max_connections = 10000, .max_per_address = 1000});
//   absl::StatusOr<Admission::Ticket> t = admission.Admit("10.0.0.7", [weak] { ... close ... });
//   t->Settle();  // the request arrived whole: no longer evictable
//
// Thread-safe. The evict callback runs on the thread that admits the newcomer,
// under no lock of Admission's; it must only post the close to the connection.
#ifndef CHAT_EDGE_NET_ADMISSION_H_
#define CHAT_EDGE_NET_ADMISSION_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace edge {

class Admission : public std::enable_shared_from_this<Admission> {
 public:
  struct Limits {
    size_t max_connections = 10000;
    size_t max_per_address = 1000;
  };
  struct Counts {
    size_t connections = 0;
    size_t pending = 0;
    uint64_t refused = 0;
    uint64_t evicted = 0;
  };

  // Held by one connection; gives its place back when destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept { *this = std::move(other); }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket() { Release(); }
    // The connection's request arrived whole: it is no longer evicted for others.
    void Settle();
    void Release();

   private:
    friend class Admission;
    std::shared_ptr<Admission> owner_;
    uint64_t id_ = 0;
  };

  explicit Admission(Limits limits) : limits_(limits) {}

  // Which cap refused a connection: chat::ReasonOf its status.
  static constexpr char kMaxPerAddress[] = "max_per_address";
  static constexpr char kMaxConnections[] = "max_connections";

  // A place for a connection from `address`, pending until Settle(); or
  // RESOURCE_EXHAUSTED saying which cap was hit (with kMaxPerAddress or
  // kMaxConnections as its reason). `evict` closes the connection.
  absl::StatusOr<Ticket> Admit(const std::string& address, std::function<void()> evict);

  Counts counts() const;
  const Limits& limits() const { return limits_; }

 private:
  struct Entry {
    std::string address;
    std::function<void()> evict;
    bool pending = true;               // Until Settle().
    std::list<uint64_t>::iterator at;  // Its place in pending_, while pending.
  };

  void Settle(uint64_t id);
  void Release(uint64_t id);
  void EraseLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Limits limits_;
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> per_address_ ABSL_GUARDED_BY(mu_);
  std::list<uint64_t> pending_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  uint64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evicted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_ADMISSION_H_
