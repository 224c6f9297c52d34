"""The checkpoint record of a snapshots partition, under `CHECKPOINT_KEY`: the format byte
0x05, the next command offset, the clock (epoch ms) and the next internal command offset
(u64 big-endian each), then the msgpack array ``(marks, flows, lost)``. It is written in the
same transaction as a batch's snapshots, so a snapshots partition read to its end says where
its commands (and internal commands) partitions resume, what its clock was and its money
flows (the latest checkpoint survives compaction). Any other layout is refused."""

from typing import Final

import msgspec

from topology.codec.wire import ENCODER, CodecError
from topology.envelopes import Checkpoint
from topology.flows import Flows

__all__ = ["CHECKPOINT_KEY", "decode_checkpoint", "encode_checkpoint"]

CHECKPOINT_KEY: Final = b""
"""The key of the checkpoint record in a snapshots partition (aggregate ids are non-empty)."""

_FORMAT: Final = b"\x05"
_HEAD: Final = 25  # the format byte and three u64
_TAIL: Final = msgspec.msgpack.Decoder(
    tuple[list[tuple[int, bytes, int]], Flows | None, list[bytes]]
)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """The checkpoint record's value. Raises ValueError for a negative offset or clock."""
    if min(checkpoint.next_offset, checkpoint.clock_ms, checkpoint.internal_offset) < 0:
        raise ValueError(f"a checkpoint's offsets and clock are >= 0, got {checkpoint}")
    marks = [(p, key, at) for p, (key, at) in sorted(checkpoint.remembered.items())]
    return (
        _FORMAT
        + checkpoint.next_offset.to_bytes(8, "big")
        + checkpoint.clock_ms.to_bytes(8, "big")
        + checkpoint.internal_offset.to_bytes(8, "big")
        + ENCODER.encode((marks, checkpoint.flows, sorted(checkpoint.lost)))
    )


def decode_checkpoint(data: bytes | None) -> Checkpoint:
    """The checkpoint a checkpoint record's value holds. Raises CodecError for a tombstone
    or any other layout, naming the layout expected."""
    if data is None:
        raise _refused("a tombstone")
    if data[:1] != _FORMAT or len(data) <= _HEAD:
        raise _refused(f"{len(data)} bytes, format byte {data[:1].hex() or 'none'}")
    try:
        marks, flows, lost = _TAIL.decode(data[_HEAD:])
    except msgspec.DecodeError as error:
        raise _refused(f"the tail: {error}") from None
    return Checkpoint(
        next_offset=int.from_bytes(data[1:9], "big"),
        clock_ms=int.from_bytes(data[9:17], "big"),
        remembered={p: (key, at) for p, key, at in marks},
        internal_offset=int.from_bytes(data[17:25], "big"),
        flows=flows,
        lost=frozenset(lost),
    )


def _refused(what: str) -> CodecError:
    return CodecError(
        f"not a checkpoint: {what}; expected format byte 05, the next offset, the clock and "
        "the internal offset (u64 each), then the msgpack (marks, flows, lost)"
    )
