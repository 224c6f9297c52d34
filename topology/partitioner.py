"""Kafka's default key partitioner, bit for bit.

`partition_for` equals the Java producer's rule for keyed records and librdkafka's
`murmur2_random` partitioner for non-empty keys, so every producer and the query router
agree on which partition owns an aggregate.
"""

import struct
from functools import lru_cache
from typing import Final

__all__ = ["murmur2", "partition_for"]

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


@lru_cache(maxsize=64)
def _words(count: int) -> struct.Struct:
    """Unpacks `count` little-endian unsigned 32-bit words."""
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with Kafka's seed, returned as the signed
    32-bit integer Java returns."""
    m, mask = _M, _MASK
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    for word in _words(words).unpack_from(data):
        k = (word * m) & mask
        h = (h * m ^ (k ^ (k >> 24)) * m) & mask
    tail = length & 3
    if tail:
        rest = words << 2
        if tail == 3:
            h ^= data[rest + 2] << 16
        if tail >= 2:
            h ^= data[rest + 1] << 8
        h = ((h ^ data[rest]) * m) & mask
    h = ((h ^ (h >> 13)) * m) & mask
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of `key` among `partitions`: `(murmur2(key) & 0x7fffffff) % partitions`."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
