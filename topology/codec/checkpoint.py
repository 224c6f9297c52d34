"""The checkpoint record of a snapshots partition, under `CHECKPOINT_KEY`: the format byte
0x06, the next command offset, the clock (epoch ms), the next internal command offset and
the commit sequence (u64 big-endian each), then the msgpack array ``(marks, flows, lost)``.
It is written in the same transaction as a batch's snapshots (after them), so a snapshots
partition read to its end says where its commands (and internal commands) partitions resume,
what its clock was, its money flows and how many batches it committed (the latest checkpoint
survives compaction). Format 0x05 (the same without the commit sequence: written before
there was one) still decodes, with `seq` 0; any other layout is refused."""

from typing import Final

import msgspec

from topology.codec.wire import ENCODER, CodecError
from topology.envelopes import Checkpoint
from topology.flows import Flows

__all__ = ["CHECKPOINT_KEY", "decode_checkpoint", "encode_checkpoint"]

CHECKPOINT_KEY: Final = b""
"""The key of the checkpoint record in a snapshots partition (aggregate ids are non-empty)."""

_FORMAT: Final = b"\x06"
_HEADS: Final = {_FORMAT: 33, b"\x05": 25}  # format byte → the head's length (it and its u64s)
_TAIL: Final = msgspec.msgpack.Decoder(
    tuple[list[tuple[int, bytes, int]], Flows | None, list[bytes]]
)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """The checkpoint record's value. Raises ValueError for a negative offset, clock or
    sequence."""
    c = checkpoint
    if min(c.next_offset, c.clock_ms, c.internal_offset, c.seq) < 0:
        raise ValueError(f"a checkpoint's offsets, clock and sequence are >= 0, got {c}")
    marks = [(p, key, at) for p, (key, at) in sorted(checkpoint.remembered.items())]
    return (
        _FORMAT
        + checkpoint.next_offset.to_bytes(8, "big")
        + checkpoint.clock_ms.to_bytes(8, "big")
        + checkpoint.internal_offset.to_bytes(8, "big")
        + checkpoint.seq.to_bytes(8, "big")
        + ENCODER.encode((marks, checkpoint.flows, sorted(checkpoint.lost)))
    )


def decode_checkpoint(data: bytes | None) -> Checkpoint:
    """The checkpoint a checkpoint record's value holds. Raises CodecError for a tombstone
    or any other layout, naming the layout expected."""
    if data is None:
        raise _refused("a tombstone")
    head = _HEADS.get(data[:1], 0)
    if not head or len(data) <= head:
        raise _refused(f"{len(data)} bytes, format byte {data[:1].hex() or 'none'}")
    try:
        marks, flows, lost = _TAIL.decode(data[head:])
    except msgspec.DecodeError as error:
        raise _refused(f"the tail: {error}") from None
    return Checkpoint(
        next_offset=int.from_bytes(data[1:9], "big"),
        clock_ms=int.from_bytes(data[9:17], "big"),
        remembered={p: (key, at) for p, key, at in marks},
        internal_offset=int.from_bytes(data[17:25], "big"),
        flows=flows,
        lost=frozenset(lost),
        seq=int.from_bytes(data[25:33], "big") if head == _HEADS[_FORMAT] else 0,
    )


def _refused(what: str) -> CodecError:
    return CodecError(
        f"not a checkpoint: {what}; expected format byte 06, the next offset, the clock, "
        "the internal offset and the commit sequence (u64 each; format 05: without the "
        "sequence), then the msgpack (marks, flows, lost)"
    )
