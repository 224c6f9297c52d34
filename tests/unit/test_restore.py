"""Recovery's folds: installing snapshots, and folding events (catch-up, rebuild)."""

import pytest

from actors.audit import fold_in_sequence
from ledger import LEDGER, Deposit, Deposited, OpenAccount, Withdraw
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY
from topology.codec.snapshots import StaleSnapshotError
from topology.codec.wire import CodecError
from topology.envelopes import Slot, Snapshot
from topology.moves import (
    RECORD_HEADER,
    SLOT_RECORD_KEY,
    Arrival,
    Departure,
    MoveSlots,
    encode_marker,
    encode_move,
)
from topology.restore import (
    SequenceGapError,
    TailEnd,
    apply_event_record,
    apply_event_records,
    apply_snapshot_record,
    resume_rebuild,
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


# --- a repartition's markers ----------------------------------------------------------------


def _marked(kind: str) -> list[tuple[str, bytes]]:
    return [(RECORD_HEADER, kind.encode())]


def test_a_departure_drops_the_account_and_an_arrival_installs_its_snapshot() -> None:
    first, second = history()
    states: dict[str, Slot] = {}
    for value in events(first, second):
        apply_event_record(LEDGER_CODEC, states, value)
    a = states["a"]
    departure = encode_marker(Departure("a", moved_to=3, move_id="m-1", sequence=a.version))
    assert apply_event_record(LEDGER_CODEC, states, departure, _marked("departed"))
    assert "a" not in states and "b" in states
    # The same events, replayed on the target: the arrival is where a's history resumes.
    _, snapshot = LEDGER_CODEC.snapshots.record("a", a, 0)
    arrival = encode_marker(
        Arrival("a", moved_from=0, move_id="m-1", sequence=a.version, snapshot=snapshot)
    )
    target: dict[str, Slot] = {}
    assert apply_event_record(LEDGER_CODEC, target, arrival, _marked("arrived"))
    assert target == {"a": a}
    assert not apply_event_record(LEDGER_CODEC, target, arrival, _marked("arrived"))  # reflected
    after = LEDGER_CODEC.events.encode(
        "a", a.version + 1, Deposited(1), command_id="x", timestamp_ms=0
    )
    assert apply_event_record(LEDGER_CODEC, target, after)
    assert target["a"].version == a.version + 1
    assert target["a"].state.balance == a.state.balance + 1


def test_an_arrival_whose_snapshot_is_not_its_account_at_its_sequence_is_refused() -> None:
    first, _ = history()
    a = first.changed["a"]
    _, snapshot = LEDGER_CODEC.snapshots.record("a", a, 0)
    wrong = encode_marker(Arrival("a", 0, "m-1", a.version + 1, snapshot))
    with pytest.raises(CodecError, match="carries the snapshot"):
        apply_event_record(LEDGER_CODEC, {}, wrong, _marked("arrived"))


def test_a_move_request_on_an_events_topic_is_refused() -> None:
    value = encode_move(MoveSlots("m-1", 1, (0,), 1))
    with pytest.raises(CodecError, match="does not belong on an events topic"):
        apply_event_record(LEDGER_CODEC, {}, value, _marked("move"))


def test_the_slot_record_is_not_an_aggregate_snapshot() -> None:
    states: dict[str, Slot] = {}
    assert apply_snapshot_record(LEDGER_CODEC, states, SLOT_RECORD_KEY, b"\x00") is None
    assert states == {}


def test_the_audit_folds_each_account_in_sequence_order_across_partitions() -> None:
    first, second = history()
    decoded = [LEDGER_CODEC.events.decode(v) for v in events(first, second)]
    facts = [(env.aggregate_id, env.sequence, event) for env, event in decoded]
    in_log = fold_in_sequence(LEDGER, facts)
    # a moved: its later events (on a lower partition) are read before its earlier ones.
    moved = [f for f in facts if f[0] == "a" and f[1] > 1] + [
        f for f in facts if not (f[0] == "a" and f[1] > 1)
    ]
    assert fold_in_sequence(LEDGER, moved) == in_log
    assert in_log == {k: s.state for k, s in {**first.changed, **second.changed}.items()}
    with pytest.raises(ValueError, match="events missing"):
        fold_in_sequence(LEDGER, [f for f in facts if f[1] != 2])


# --- a rebuild's resume and its last replay ------------------------------------------------


def test_a_rebuild_resumes_at_its_largest_stamp_and_skips_the_live_checkpoint() -> None:
    first, second = history()
    records = [(out.key, out.value) for out in first.snapshots + second.snapshots]
    records.insert(2, (CHECKPOINT_KEY, b"not a snapshot"))
    resumed = resume_rebuild(LEDGER_CODEC, records)
    assert resumed.position == 3
    assert resumed.states == {**first.changed, **second.changed}
    assert resumed.encoded == {out.key: out.value for out in second.snapshots}
    gone = resume_rebuild(LEDGER_CODEC, [*records, (b"a", None)])
    assert set(gone.states) == {"b"} and set(gone.encoded) == {b"b"}


def test_folding_event_records_names_the_aggregates_changed() -> None:
    first, second = history()
    records = [(out.key, out.value, None) for out in first.events + second.events]
    states: dict[str, Slot] = {}
    changed: set[str] = set()
    assert apply_event_records(LEDGER_CODEC, states, records[:3], changed) == 3
    assert apply_event_records(LEDGER_CODEC, states, records, changed) == 2  # 3 held already
    assert changed == {"a", "b"} and states == {**first.changed, **second.changed}


def test_the_last_replay_reaches_at_least_the_committed_events() -> None:
    """A read of the end made before the last batch's markers landed (5) lies below the
    events the paused partition committed (9: the last batch's marker is at 9): the replay
    goes on to 9 and past that marker, to the end it can see once the marker is there."""
    target = TailEnd(at_least=9)
    assert target.aim(5) == 9
    assert not target.reached(5, at_end=True) and not target.reached(8, at_end=False)
    assert not target.reached(9, at_end=False)  # the marker at 9 not read past yet
    assert target.reached(10, at_end=True)
    assert target.aim(12) == 12 and not target.reached(10, at_end=True)
    assert TailEnd(at_least=0).aim(5) == 5  # without it: the stale end
