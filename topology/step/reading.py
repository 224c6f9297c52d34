"""Reading a batch: its records decoded, each topic in offset order; a record of the flow
itself (`topology.moves.RECORD_HEADER`) told apart before decoding (a forwarded client
command read as the command it wraps, a move's request or part decoded, any other out of
place: poison); where each topic resumes."""

from collections.abc import Sequence
from typing import Any, NamedTuple

from topology.codec.aggregate import Codec
from topology.codec.commands import CommandDecodeError
from topology.codec.wire import CodecError
from topology.codes import PoisonCode
from topology.envelopes import CommandEnvelope
from topology.moves import (
    HandoffPart,
    MoveSlots,
    RecordKind,
    decode_forwarded,
    decode_move,
    decode_part,
    record_kind,
)
from topology.step.records import InRecord

__all__ = ["Parsed", "Read", "after", "read", "whole_moves"]

Parsed = CommandEnvelope | CommandDecodeError | MoveSlots | HandoffPart
"""A record as read: a command's envelope, why it does not decode, or a move's record."""


class Read(NamedTuple):
    """The decoded records (an envelope and its command, the reason it does not decode, or
    a move's record), where each topic resumes, and why reading stopped early (None: it
    did not)."""

    decoded: list[tuple[InRecord, Parsed, Any]]
    next_offsets: tuple[int, int]
    held: str | None


def read(
    codec: Codec,
    records: Sequence[InRecord],
    positions: tuple[int, int],
    known: int,
    moves: bool,
) -> Read:
    """Decode `records`; stop before an internal command written with a newer internal
    schema version than this worker's (`known`): it is read again once the worker is
    upgraded, never dead-lettered (it may carry money in flight); likewise before a move's
    record when the partition has no slot record (not `moves`: it waits for the routing
    table). A forwarded client command is read as the command it wraps."""
    decoded: list[tuple[InRecord, Parsed, Any]] = []
    nexts = list(positions)
    previous = [-1, -1]
    for read in records:
        source = int(read.internal)
        if read.offset <= previous[source]:
            raise ValueError(f"offset {read.offset} does not follow {previous[source]}")
        flow = _flow(read) if read.headers else None
        record = flow if isinstance(flow, InRecord) else read
        if isinstance(flow, MoveSlots | HandoffPart) and not moves:
            held = (
                f"a move's record at internal offset {record.offset} reached a partition "
                "with no slot record: the batch stops before it until the application's "
                "routing table is known here"
            )
            return Read(decoded, (nexts[0], nexts[1]), held)
        if flow is not None and not isinstance(flow, InRecord):
            decoded.append((record, flow, None))
            previous[source] = record.offset
            nexts[source] = record.offset + 1
            continue
        try:
            envelope, command = codec.commands.decode(record.value)
        except CommandDecodeError as error:
            decoded.append((record, error, None))
        else:
            written = envelope.schema_version or 1
            if record.leg and written > known:
                held = (
                    f"internal command at offset {record.offset} has schema version {written}, "
                    f"newer than this worker's {known}: upgrade this worker; the batch stops "
                    "before it (it is never dead-lettered)"
                )
                return Read(decoded, (nexts[0], nexts[1]), held)
            decoded.append((record, envelope, command))
        previous[source] = record.offset
        nexts[source] = record.offset + 1
    return Read(decoded, (nexts[0], nexts[1]), None)


def _flow(record: InRecord) -> InRecord | MoveSlots | HandoffPart | CommandDecodeError | None:
    """What a record carrying `RECORD_HEADER` is: a forwarded client command (as the record
    of the command it wraps), a move's request or part, or why it does not belong here (a
    flow record is honoured on the internal topic only). None: no such header."""
    try:
        kind = record_kind(record.headers)
    except ValueError as e:
        return CommandDecodeError(PoisonCode.FLOW_RECORD, str(e), None)
    if kind is None:
        return None
    value = record.value
    if not record.internal or value is None:
        where = "the internal topic" if record.internal else "the commands topic"
        return CommandDecodeError(PoisonCode.FLOW_RECORD, f"a {kind} record on {where}", None)
    try:
        match kind:
            case RecordKind.FORWARDED:
                forwarded = decode_forwarded(value)
                return InRecord(
                    record.offset,
                    record.key,
                    forwarded.value,
                    record.headers,
                    True,
                    forwarded.read_ms,
                )
            case RecordKind.MOVE:
                return decode_move(value)
            case RecordKind.HANDOFF:
                return decode_part(value)
    except (CodecError, ValueError) as e:
        return CommandDecodeError(PoisonCode.FLOW_RECORD, str(e), None)
    return CommandDecodeError(PoisonCode.FLOW_RECORD, f"a {kind} record is not a command", None)


def whole_moves(decoded: Sequence[tuple[InRecord, Parsed, Any]]) -> None:
    """Raises ValueError when the batch holds a part of a move but not its last part (the
    read loop never ends a batch inside a move's parts)."""
    missing: dict[str, int] = {}
    for _, parsed, _ in decoded:
        if isinstance(parsed, HandoffPart):
            if parsed.index == parsed.count - 1:
                missing.pop(parsed.move_id, None)
            else:
                missing[parsed.move_id] = parsed.count - 1
    if missing:
        raise ValueError(f"the batch ends inside the parts of moves {sorted(missing)}")


def after(
    positions: tuple[int, int], handled: Sequence[tuple[InRecord, Parsed, Any]]
) -> tuple[int, int]:
    """Where each topic resumes after the `handled` records (a batch cut at a move)."""
    nexts = list(positions)
    for record, _, _ in handled:
        nexts[int(record.internal)] = record.offset + 1
    return nexts[0], nexts[1]
