"""Shared builders for the unit tests: command records and a batch runner with defaults."""

from collections.abc import Mapping, Sequence

import msgspec

from ledger import LEDGER, Command
from topology.codec import Slot, encode_command, encode_key
from topology.step import BatchResult, InRecord, process_batch

__all__ = ["SOURCE", "record", "run"]

SOURCE = "unit.commands"


def record(
    offset: int,
    aggregate_id: str,
    command: Command | msgspec.Struct,
    command_id: str,
    *,
    expected_version: int | None = None,
    reply_to: int | None = 0,
    headers: Sequence[tuple[str, bytes]] = (),
) -> InRecord:
    """A command record as a client would produce it (keyed by the aggregate id)."""
    value = encode_command(
        aggregate_id,
        command,
        command_id=command_id,
        expected_version=expected_version,
        reply_to=reply_to,
    )
    return InRecord(offset, encode_key(aggregate_id), value, headers)


def run(
    committed: Mapping[str, Slot],
    records: Sequence[InRecord],
    *,
    partition: int = 0,
    partitions: int = 1,
    events_offset: int = 0,
    recent_limit: int = 16,
    now_ms: int = 1_700_000_000_000,
    reply_lanes: int = 1,
) -> BatchResult:
    """`process_batch` over the ledger with test defaults (one partition, one reply lane)."""
    return process_batch(
        LEDGER,
        committed,
        records,
        partition=partition,
        partitions=partitions,
        source_topic=SOURCE,
        events_offset=events_offset,
        recent_limit=recent_limit,
        now_ms=now_ms,
        reply_lanes=reply_lanes,
    )
