"""Record keys: an aggregate's (and a reply's), the id memory's, the history index's (events
and waypoints), and the touch key. Keys of different kinds cannot collide: an aggregate key is
UTF-8, an id key a msgpack array, a history key starts with a 2-byte length of at most 1 KiB, a
waypoint key with ``0xff 0x01``, a seam key with ``0xff 0x02``, and `TOUCH_KEY` is none of
these."""

from typing import Final

import msgspec

from topology.codec.wire import ENCODER, CodecError

__all__ = [
    "TOUCH_KEY",
    "decode_key",
    "encode_history_key",
    "encode_id_key",
    "encode_internal_id_key",
    "encode_key",
    "encode_seam_key",
    "encode_waypoint_key",
    "history_prefix",
    "id_key_aggregate",
    "id_key_prefixes",
    "seam_prefix",
    "waypoint_prefix",
]

TOUCH_KEY: Final = b"\xff\x00touch"
"""A key no aggregate id, id key or checkpoint has (it is not UTF-8, nor a msgpack array):
a starting partition writes a tombstone under it to every partition it restores from, in a
committed transaction, so the broker's high watermark reaches the log end first (after an
unclean broker restart it can lag until the next append, hiding committed records).
Readers skip it; compaction keeps at most one."""


def encode_key(aggregate_id: str) -> bytes:
    """The record key of an aggregate (or of a reply: its command id)."""
    return aggregate_id.encode()


def decode_key(key: bytes) -> str:
    """The aggregate id (or command id) a record key names."""
    try:
        return key.decode()
    except UnicodeDecodeError as error:
        raise CodecError(f"record key is not UTF-8: {error}") from None


def encode_id_key(aggregate_id: str, command_id: str) -> bytes:
    """The idempotency memory's key of a command id: ids are scoped to their aggregate. Also
    the key of a remembered reply record (so compaction keeps one reply per id)."""
    return ENCODER.encode((aggregate_id, command_id))


def encode_internal_id_key(aggregate_id: str, command_id: str) -> bytes:
    """The idempotency memory's key of an internal command id: a three-element array, so no
    client command (its key is `encode_id_key`, two elements) can take an internal leg's
    place in the memory, whatever id it picks."""
    return ENCODER.encode((aggregate_id, command_id, 0))


def id_key_prefixes(aggregate_id: str) -> tuple[bytes, bytes]:
    """The prefixes of every id key of an aggregate: a client command's (a two-element
    msgpack array) and an internal command's (three elements). The aggregate id's msgpack
    string carries its length, so no aggregate's prefix is another's."""
    head = ENCODER.encode(aggregate_id)
    return b"\x92" + head, b"\x93" + head


def id_key_aggregate(key: bytes) -> str:
    """The aggregate id an id key (`encode_id_key`, `encode_internal_id_key`) names. Raises
    CodecError for a key of another kind."""
    try:
        decoded = msgspec.msgpack.decode(key)
    except msgspec.DecodeError as error:
        raise CodecError(f"not an id key: {error}") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) not in (2, 3)
        or not isinstance(decoded[0], str)
    ):
        raise CodecError(f"not an id key: {key!r}")
    return decoded[0]


def history_prefix(aggregate_id: str) -> bytes:
    """The prefix of every history index key of an aggregate: its id's length (2 bytes; an id
    is at most 1 KiB of UTF-8) then its id, so no id's prefix is another id's."""
    raw = aggregate_id.encode()
    return len(raw).to_bytes(2, "big") + raw


def encode_history_key(aggregate_id: str, sequence: int) -> bytes:
    """The history index key of an aggregate's event ``sequence``: the aggregate's prefix,
    then the sequence (8 bytes, big-endian), so keys sort by aggregate, then sequence."""
    return history_prefix(aggregate_id) + sequence.to_bytes(8, "big")


_WAYPOINT: Final = b"\xff\x01"


def waypoint_prefix(aggregate_id: str) -> bytes:
    """The prefix of every waypoint key of an aggregate in the history index: ``0xff 0x01``
    (no history key starts so: an id is at most 1 KiB, 0x0400), then its history prefix."""
    return _WAYPOINT + history_prefix(aggregate_id)


def encode_waypoint_key(aggregate_id: str, sequence: int) -> bytes:
    """The history index key of the aggregate's state after its event ``sequence`` (a
    waypoint): the waypoint prefix, then the sequence (8 bytes, big-endian), so an
    aggregate's waypoints sort by sequence, apart from every event key."""
    return waypoint_prefix(aggregate_id) + sequence.to_bytes(8, "big")


_SEAM: Final = b"\xff\x02"


def seam_prefix(aggregate_id: str) -> bytes:
    """The prefix of every seam key of an aggregate in the history index (a repartition's
    marker of it): ``0xff 0x02``, then its history prefix."""
    return _SEAM + history_prefix(aggregate_id)


def encode_seam_key(aggregate_id: str, sequence: int, offset: int) -> bytes:
    """The history index key of an aggregate's seam at its event ``sequence``, marked at
    events ``offset``: seams sort by sequence, then in log order (an account may leave and
    come back with no event between)."""
    return seam_prefix(aggregate_id) + sequence.to_bytes(8, "big") + offset.to_bytes(8, "big")
