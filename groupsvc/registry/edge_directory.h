// EdgeDirectory: the attached edges, by edge id and by the channel prefix
// each owns, with the stream generation that holds each.
//
// While a stream of an edge id is attached, only a stream with the same
// incarnation (the same process reconnecting) may replace it; any other is
// refused, so two processes given one id cannot evict each other.
//
// Thread-safe. Attach runs its `while_replacing` step under the directory's
// lock, so that no later stream of the edge registers before the replaced
// stream's memberships are gone (lock order: the directory, then whatever that
// step takes).
#ifndef CHAT_GROUPSVC_REGISTRY_EDGE_DIRECTORY_H_
#define CHAT_GROUPSVC_REGISTRY_EDGE_DIRECTORY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "groupsvc/registry/event.h"
#include "groupsvc/registry/group_table.h"

namespace groupsvc {

// What an edge is told to close (v1.CloseConnections).
struct UserClose {
  std::string user_id;
  std::string group;  // Empty: every connection of the user.
  uint32_t code = 0;
  std::string reason;
};

// The attach stream of one edge, as the registry sees it.
class EdgeSink {
 public:
  virtual ~EdgeSink() = default;
  // Queues one event for `channels`, all owned by this edge. False when the
  // stream's outbound queue is full or closed: the copies are lost.
  // `offset`: the event's in the group's history (0: none), under `epoch`
  // when it is not the shard's (Delivery.epoch).
  virtual bool Deliver(const EventPtr& event, std::vector<std::string> channels,
                       absl::string_view group, uint64_t offset, absl::string_view epoch) = 0;
  // A newer stream of the same edge process (same edge id and incarnation)
  // took over; this one should end.
  virtual void Replaced() = 0;
  // An operator closes `close.user_id`'s connections on this edge (those in
  // `close.group`, if set). False when the stream cannot take it.
  virtual bool CloseUser(const UserClose& close) { return false; }
};

// What an edge's hello says, and where it came from.
struct AttachRequest {
  std::string edge_id;
  std::string channel_prefix;
  // Random bytes chosen once per edge process; never shown by any RPC or log.
  std::string incarnation;
  // The peer address, for messages and logs only ("" if unknown).
  std::string peer;
};
inline constexpr size_t kMinIncarnationBytes = 16;
inline constexpr size_t kMaxIncarnationBytes = 256;

struct Attachment {
  uint64_t generation = 0;
  bool replaced_previous = false;
};

class EdgeDirectory {
 public:
  struct Admitted {
    Attachment attachment;
    // The stream replaced, to be told so (outside every lock); or null.
    std::shared_ptr<EdgeSink> replaced;
  };

  // Validates the hello and registers `sink` as the edge's stream. With the
  // same edge id and incarnation it replaces the older stream, calling
  // `while_replacing(old_prefix, new_generation)` first; with another
  // incarnation it is ALREADY_EXISTS, as is a prefix held by another edge id.
  absl::StatusOr<Admitted> Attach(
      const AttachRequest& hello, std::shared_ptr<EdgeSink> sink,
      absl::FunctionRef<void(absl::string_view old_prefix, uint64_t generation)> while_replacing);
  // The prefix of `edge_id` while the stream `generation` holds it.
  std::optional<std::string> CurrentPrefix(absl::string_view edge_id, uint64_t generation) const;
  // Removes the edge unless a newer stream holds it; true if removed.
  bool Remove(absl::string_view edge_id, uint64_t generation);

  std::shared_ptr<EdgeSink> Find(absl::string_view prefix) const;
  // The stream of the attached edge `edge_id`, or null.
  std::shared_ptr<EdgeSink> FindEdge(absl::string_view edge_id) const;
  // The id of the attached edge that owns `prefix`, or "".
  std::string EdgeIdOf(absl::string_view prefix) const;
  // Replaces each member's owner prefix (in edge_id) by the id of the edge
  // that holds it, or "" if none.
  void NameOwners(std::vector<MemberInfo>& members) const;
  size_t size() const;

 private:
  struct Entry {
    std::string edge_id;
    std::string incarnation;
    std::string peer;
    std::shared_ptr<EdgeSink> sink;
    uint64_t generation = 0;
  };

  bool CurrentLocked(absl::string_view edge_id, uint64_t generation) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> by_prefix_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> prefix_by_edge_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_REGISTRY_EDGE_DIRECTORY_H_
