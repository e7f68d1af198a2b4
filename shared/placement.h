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
// shard; nothing moves between the old ones. Fixed vectors in
// tests/unit/placement_test.cc pin the function down for other implementations.
#ifndef CHAT_SHARED_PLACEMENT_H_
#define CHAT_SHARED_PLACEMENT_H_

#include <cstddef>
#include <cstdint>

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

}  // namespace chat

#endif  // CHAT_SHARED_PLACEMENT_H_
