// Placement: which of N groupsvc shards owns a group or a channel. Every edge,
// every shard and any other client (a Python layer, a script) computes it the
// same way, from the name alone, so they agree without asking anyone:
//
//   shard = JumpHash(Fnv1a64(key), N)
//
//   key      a group's name; a user's id; for a process-local channel ("edge-1.x7k2!c9") the
//            owner key, the part after the last '.' before '!' with the '!'
//            ("x7k2!", chat::ChannelOwnerPrefix), so that all
//            of one process's channels are placed together; any other channel's
//            name as it is.
//   Fnv1a64  64-bit FNV-1a of the key's bytes (offset basis 14695981039346656037,
//            prime 1099511628211).
//   JumpHash Lamping and Veach's jump consistent hash ("A Fast, Minimal Memory,
//            Consistent Hash Algorithm", 2014).
//
// Growing N to N+1 moves about 1/(N+1) of the keys, all of them to the new
// shard; nothing moves between the old ones.
//
// Resharding (README: docs/sharding.md). While groupsvc's shards bridge two
// counts (--bridge_shards=M beside the N of --shards), a client whose list has
// one of the counts places each group or channel by both: `own` by its list's
// count, `bridged` by the other. A group's members join both; a group's sends
// and a channel's go to `bridged` as long as that shard still bridges (or has
// not said yet), so every member of a room is reached through one shard
// whichever list its edge has. groupsvc, which bridges while configured to,
// owns a key in either place and forwards a unary call to `send`.
//
// tests/vectors/placement.json pins both down with fixed vectors that the C++
// tests (tests/unit/placement_test.cc) and the Python layer's tests check.
#ifndef CHAT_SHARED_PLACEMENT_H_
#define CHAT_SHARED_PLACEMENT_H_

#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace chat {

uint64_t Fnv1a64(absl::string_view bytes);
// In [0, buckets); buckets must be at least 1.
uint32_t JumpHash(uint64_t key, uint32_t buckets);

// The shard of a group, among `shards`.
uint32_t GroupShard(absl::string_view group, uint32_t shards);
// The shard of a channel: by its owner prefix when it has one, else by its name.
uint32_t ChannelShard(absl::string_view channel, uint32_t shards);
// The shard that counts a signed-in user's connections (--max_connections_per_user)
// and answers GetUser: by the user id's bytes, as a group's by its name.
uint32_t UserShard(absl::string_view user_id, uint32_t shards);

// Where one group's or channel's commands go while shards may bridge two counts.
struct Owners {
  uint32_t own = 0;      // By the client's own count.
  uint32_t bridged = 0;  // By the bridged count; `own` without a bridge.
  uint32_t send = 0;     // Where a send goes: `bridged` while that shard bridges.
  bool has(uint32_t shard) const { return shard == own || shard == bridged; }
  // The shards a group's members join: member(0) is `own`, member(1) (when
  // count() is 2) `bridged`.
  int count() const { return own == bridged ? 1 : 2; }
  uint32_t member(int i) const { return i == 0 ? own : bridged; }
};
// Whether the shard (by its index in the client's list) still bridges: true
// before its first Welcome, then whether its bridge_shard_count is nonzero.
using Bridging = absl::FunctionRef<bool(uint32_t shard)>;
// `shards`: the client's count; `bridge`: the other count, or 0.
Owners GroupOwners(absl::string_view group, uint32_t shards, uint32_t bridge, Bridging bridging);
Owners ChannelOwners(absl::string_view channel, uint32_t shards, uint32_t bridge,
                     Bridging bridging);

}  // namespace chat

#endif  // CHAT_SHARED_PLACEMENT_H_
