"""Which groupsvc shard owns a group or a channel: shared/placement.h, in Python.

Every edge, every shard and this layer compute it from the name alone:
``shard = jump_hash(fnv1a64(key), shards)``, where the key is a group's name,
a process-local channel's owner key (``owner_key``), or any other channel's name.
python/tests/test_layer.py (test_placement_matches_the_cpp_fixed_vectors) checks
the C++ fixed vectors of tests/unit/placement_test.cc.
"""

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
