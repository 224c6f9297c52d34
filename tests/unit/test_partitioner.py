"""The key partitioner must match Kafka's Java client and librdkafka's murmur2_random."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from topology.partitioner import murmur2, partition_for

# Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
KAFKA_UTILS_TEST = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# librdkafka, src/rdmurmur2.c unit test: Java's murmur2 masked with 0x7fffffff.
LIBRDKAFKA_MASKED = {b"kafka": 1348980580, b"amqp": 767747138, b"giberish123456789": 257239820}


@pytest.mark.parametrize(("data", "expected"), KAFKA_UTILS_TEST.items())
def test_murmur2_matches_kafka_utils_test(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@pytest.mark.parametrize(("data", "expected"), LIBRDKAFKA_MASKED.items())
def test_murmur2_matches_librdkafka(data: bytes, expected: int) -> None:
    assert murmur2(data) & 0x7FFFFFFF == expected


def _java_murmur2(data: bytes) -> int:
    """A literal transcription of Kafka's Utils.murmur2 with explicit int32 wrap-around,
    independent of the optimised version under test."""

    def i32(x: int) -> int:
        x &= 0xFFFFFFFF
        return x - (1 << 32) if x >= 1 << 31 else x

    def ushr(x: int, n: int) -> int:
        return (x & 0xFFFFFFFF) >> n

    length = len(data)
    m, r = 0x5BD1E995, 24
    h = i32(0x9747B28C ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = data[i4] | data[i4 + 1] << 8 | data[i4 + 2] << 16 | data[i4 + 3] << 24
        k = i32(k * m)
        k ^= ushr(k, r)
        k = i32(k * m)
        h = i32(h * m)
        h = i32(h ^ k)
    rest = length % 4
    base = length & ~3
    if rest == 3:
        h ^= data[base + 2] << 16
    if rest >= 2:
        h ^= data[base + 1] << 8
    if rest >= 1:
        h ^= data[base]
        h = i32(h * m)
    h = i32(h ^ ushr(h, 13))
    h = i32(h * m)
    return i32(h ^ ushr(h, 15))


def test_reference_agrees_with_kafka_vectors() -> None:
    for data, expected in KAFKA_UTILS_TEST.items():
        assert _java_murmur2(data) == expected


@given(st.binary(max_size=80))
def test_murmur2_equals_the_reference_for_every_length(data: bytes) -> None:
    assert murmur2(data) == _java_murmur2(data)
    assert -(2**31) <= murmur2(data) < 2**31


def test_partition_for_is_the_positive_hash_modulo_partitions() -> None:
    assert partition_for(b"foobar", 50) == (-790332482 & 0x7FFFFFFF) % 50 == 16
    assert partition_for(b"21", 1) == 0


@given(st.binary(min_size=1, max_size=40), st.integers(1, 1000))
def test_partition_for_is_in_range(key: bytes, partitions: int) -> None:
    assert 0 <= partition_for(key, partitions) < partitions


@pytest.mark.parametrize("partitions", [0, -3])
def test_partition_for_needs_a_partition(partitions: int) -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_for(b"key", partitions)
