"""Recovery's folds: installing snapshots, and folding events (catch-up, rebuild)."""

import pytest

from ledger import LEDGER, Deposit, Deposited, OpenAccount, Withdraw
from topology.codec.aggregate import Codec
from topology.codec.snapshots import StaleSnapshotError
from topology.codec.wire import CodecError
from topology.envelopes import Slot, Snapshot
from topology.restore import (
    SequenceGapError,
    apply_event_record,
    apply_snapshot_record,
)
from topology.step.records import BatchResult

from .support import LEDGER_CODEC, NewerLedger, record, run

NEWER = LEDGER.state_schema_version + 1  # what NewerLedger writes

# --- snapshots -----------------------------------------------------------------------------


def history() -> tuple[BatchResult, BatchResult]:
    """Two committed batches over accounts a and b; the second starts at events offset 3."""
    first = run(
        {},
        [
            record(0, "a", OpenAccount("EUR"), "c-0"),
            record(1, "a", Deposit(10), "c-1"),
            record(2, "b", OpenAccount("USD", 5), "c-2"),
        ],
        events_offset=0,
    )
    second = run(
        dict(first.changed),
        [record(3, "a", Withdraw(4), "c-3"), record(4, "b", Withdraw(5), "c-4")],
        events_offset=3,
    )
    return first, second


def test_snapshots_restore_the_committed_state() -> None:
    first, second = history()
    states: dict[str, Slot] = {}
    offsets = [
        apply_snapshot_record(LEDGER_CODEC, states, out.key, out.value)
        for out in first.snapshots + second.snapshots
    ]
    assert offsets == [0, 0, 3, 3]
    assert states == {**first.changed, **second.changed}


def test_a_tombstone_deletes() -> None:
    states = {"a": Slot(None, 0)}
    assert apply_snapshot_record(LEDGER_CODEC, states, b"a", None) is None
    assert apply_snapshot_record(LEDGER_CODEC, states, b"zzz", None) is None
    assert states == {}


def test_a_snapshot_record_needs_a_key() -> None:
    with pytest.raises(CodecError, match="key"):
        apply_snapshot_record(LEDGER_CODEC, {}, None, None)


def test_a_snapshot_under_another_key_is_refused() -> None:
    first, _ = history()
    with pytest.raises(CodecError, match="under key"):
        apply_snapshot_record(LEDGER_CODEC, {}, b"b", first.snapshots[0].value)


def test_a_stale_snapshot_raises_through() -> None:
    data = Codec(NewerLedger()).snapshots.encode(Snapshot(NEWER, "a", Slot(None, 0), 0))  # type: ignore[arg-type]
    with pytest.raises(StaleSnapshotError):
        apply_snapshot_record(LEDGER_CODEC, {}, b"a", data)


# --- events --------------------------------------------------------------------------------


def events(*results: BatchResult) -> list[bytes]:
    return [out.value or b"" for result in results for out in result.events]


def test_rebuilding_from_events_reproduces_accepted_state_and_replies() -> None:
    first, second = history()
    states: dict[str, Slot] = {}
    applied = [apply_event_record(LEDGER_CODEC, states, value) for value in events(first, second)]
    assert all(applied)
    assert states == {**first.changed, **second.changed}


def test_catch_up_replays_the_tail_and_skips_what_snapshots_hold() -> None:
    first, second = history()
    states: dict[str, Slot] = {}
    for out in first.snapshots:
        apply_snapshot_record(LEDGER_CODEC, states, out.key, out.value)
    log = events(first, second)
    start = min(
        apply_snapshot_record(LEDGER_CODEC, {}, out.key, out.value) or 0 for out in first.snapshots
    )
    applied = [apply_event_record(LEDGER_CODEC, states, value) for value in log[start:]]
    assert applied == [False, False, False, True, True]
    assert states == {**first.changed, **second.changed}


def test_a_sequence_gap_is_an_error() -> None:
    first, _ = history()
    opened = events(first)[0]
    states: dict[str, Slot] = {}
    apply_event_record(LEDGER_CODEC, states, opened)
    gap = LEDGER_CODEC.events.encode("a", 3, Deposited(1), command_id="x", timestamp_ms=0)
    with pytest.raises(SequenceGapError, match="sequence 3 follows version 1"):
        apply_event_record(LEDGER_CODEC, states, gap)
    assert states["a"].version == 1
