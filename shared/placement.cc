#include "shared/placement.h"

#include "shared/names.h"

namespace chat {

uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

uint32_t JumpHash(uint64_t key, uint32_t buckets) {
  int64_t b = -1;
  int64_t j = 0;
  while (j < static_cast<int64_t>(buckets)) {
    b = j;
    key = key * 2862933555777941757ull + 1;
    j = static_cast<int64_t>(static_cast<double>(b + 1) * (static_cast<double>(1ll << 31) /
                                                           static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<uint32_t>(b < 0 ? 0 : b);
}

uint32_t GroupShard(absl::string_view group, uint32_t shards) {
  return shards <= 1 ? 0 : JumpHash(Fnv1a64(group), shards);
}

uint32_t ChannelShard(absl::string_view channel, uint32_t shards) {
  if (shards <= 1) return 0;
  absl::string_view owner = ChannelOwnerPrefix(channel);
  return JumpHash(Fnv1a64(owner.empty() ? channel : owner), shards);
}

uint32_t UserShard(absl::string_view user_id, uint32_t shards) {
  return GroupShard(user_id, shards);
}

namespace {

Owners Place(uint32_t own, uint32_t bridged, Bridging bridging) {
  Owners owners;
  owners.own = owners.send = own;
  owners.bridged = bridged;
  if (bridged != own && bridging(bridged)) owners.send = bridged;
  return owners;
}

}  // namespace

Owners GroupOwners(absl::string_view group, uint32_t shards, uint32_t bridge, Bridging bridging) {
  const uint32_t own = GroupShard(group, shards);
  return Place(own, bridge == 0 ? own : GroupShard(group, bridge), bridging);
}

Owners ChannelOwners(absl::string_view channel, uint32_t shards, uint32_t bridge,
                     Bridging bridging) {
  const uint32_t own = ChannelShard(channel, shards);
  return Place(own, bridge == 0 ? own : ChannelShard(channel, bridge), bridging);
}

}  // namespace chat
