"""Which groupsvc shard owns a group or a channel: shared/placement.h, in Python.

Every edge, every shard and this layer compute it from the name alone:
``shard = jump_hash(fnv1a64(key), shards)``, where the key is a group's name,
a process-local channel's owner key (``owner_key``), or any other channel's name.
While groupsvc reshards, ``group_owners`` and ``channel_owners`` are the rule of
chat::GroupOwners. The tests check both against the fixed vectors the C++ tests
check (tests/vectors/placement.json).
"""

from typing import Callable, NamedTuple

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash, in [0, buckets)."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def owner_key(channel: str) -> str:
    """The part after the last '.' before '!', with the '!'; '' without '!'.

    ``specific.py3f9a!0c1d`` -> ``py3f9a!``: the client part names the process.
    """
    bang = channel.find("!")
    if bang < 0:
        return ""
    dot = channel.rfind(".", 0, bang)
    return channel[dot + 1 : bang + 1]


def group_shard(group: str, shards: int) -> int:
    return jump_hash(fnv1a64(group.encode()), shards)


def channel_shard(channel: str, shards: int) -> int:
    key = owner_key(channel) or channel
    return jump_hash(fnv1a64(key.encode()), shards)


class Owners(NamedTuple):
    """Where a group's or channel's commands go while shards may bridge two counts:
    ``own`` by our count, ``bridged`` by the bridged count, ``send`` where sends go."""

    own: int
    bridged: int
    send: int

    @property
    def members(self):
        """The shards a group's memberships join: own, and bridged when it differs."""
        return [self.own] if self.own == self.bridged else [self.own, self.bridged]


def _place(own: int, bridged: int, bridging: Callable[[int], bool]) -> Owners:
    return Owners(own, bridged, bridged if bridged != own and bridging(bridged) else own)


def group_owners(group: str, shards: int, bridge: int, bridging: Callable[[int], bool]) -> Owners:
    """``bridge``: the other count, or 0; ``bridging(shard)``: whether that shard still
    bridges (true before its first Welcome)."""
    own = group_shard(group, shards)
    return _place(own, group_shard(group, bridge) if bridge else own, bridging)


def channel_owners(channel: str, shards: int, bridge: int, bridging: Callable[[int], bool]) -> Owners:
    own = channel_shard(channel, shards)
    return _place(own, channel_shard(channel, bridge) if bridge else own, bridging)
