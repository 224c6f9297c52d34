"""The batch step: commands in, one transaction's records out, committed state untouched."""

import copy

import msgspec
import pytest

from ledger import (
    Account,
    AccountView,
    CloseAccount,
    Deposit,
    Deposited,
    OpenAccount,
    RejectionCode,
    Withdraw,
)
from topology.codec.keys import encode_id_key
from topology.codec.replies import decode_answer, decode_entry
from topology.codes import FlowCode, IdCode, PoisonCode
from topology.envelopes import Answered, CommandEnvelope, Position, Reply, Slot
from topology.idempotency import MAX_CLOCK_SKEW_MS
from topology.limits import MAX_DLQ_KEY_BYTES, MAX_DLQ_VALUE_BYTES, MAX_MESSAGE_CHARS
from topology.moves import Forwarded, RecordKind, encode_forwarded, kind_header
from topology.partitioner import partition_for
from topology.settings import DAY_MS
from topology.step.aside import set_aside
from topology.step.dead_letters import error_headers
from topology.step.records import UNREMEMBERED_KEY_PREFIX, BatchResult, InRecord
from topology.topics import TopicKind

from .support import LEDGER_CODEC, NOW, SEQ, SOURCE, Memory, commit, record, run

OPEN = OpenAccount("EUR")


def opened(*aggregate_ids: str) -> dict[str, Slot]:
    """Committed state in which these accounts are open with balance 100 (version 2)."""
    records = []
    for index, aggregate_id in enumerate(aggregate_ids):
        records.append(record(2 * index, aggregate_id, OPEN, f"open-{aggregate_id}"))
        records.append(record(2 * index + 1, aggregate_id, Deposit(100), f"fund-{aggregate_id}"))
    return dict(run({}, records).changed)


def replies(result: BatchResult) -> list[Reply]:
    """The answers the batch sends (every replies record here answers: none is in flight)."""
    answers = [decode_answer(out.value or b"") for out in result.replies]
    assert None not in answers
    return [a for a in answers if a is not None]


def outcomes(result: BatchResult) -> list[tuple[str, str | None]]:
    return [(o.outcome, o.code) for o in result.outcomes]


# --- accepted and rejected commands --------------------------------------------------------


def test_an_accepted_command_produces_event_reply_snapshot_and_view() -> None:
    committed = opened("acct-1")
    headers = [("traceparent", b"00-trace")]
    result = run(
        committed,
        [record(10, "acct-1", Deposit(25), "c-1", reply_to=0, headers=headers)],
        events_offset=7,
    )

    (event,) = result.events
    assert (event.kind, event.partition, event.key, event.source_offset) == (
        TopicKind.EVENTS,
        0,
        b"acct-1",
        10,
    )
    envelope, payload = LEDGER_CODEC.events.decode(event.value or b"")
    assert payload == Deposited(25)
    assert (envelope.sequence, envelope.command_id, envelope.timestamp_ms) == (
        3,
        "c-1",
        1_700_000_000_000,
    )

    (reply,) = result.replies
    assert (reply.kind, reply.partition, reply.key, reply.source_offset) == (
        TopicKind.REPLIES,
        0,
        encode_id_key("acct-1", "c-1"),
        10,
    )
    entry = decode_entry(reply.value or b"")
    accepted = Reply.accept(
        command_id="c-1", aggregate_id="acct-1", version=3, position=Position(0, SEQ)
    )
    assert entry == Answered(accepted, first_attempt_ms=NOW, fingerprint=entry.fingerprint)
    assert entry.fingerprint != 0
    assert result.remembered == {encode_id_key("acct-1", "c-1"): reply.value}

    (snapshot,) = result.snapshots
    assert (snapshot.kind, snapshot.key, snapshot.source_offset) == (
        TopicKind.SNAPSHOTS,
        b"acct-1",
        None,
    )
    restored = LEDGER_CODEC.snapshots.decode(snapshot.value or b"")
    assert restored.events_offset == 7
    assert restored.slot == result.changed["acct-1"]
    assert restored.slot.state == Account("open", "EUR", 125, 0)

    (view,) = result.views
    assert (view.kind, view.key) == (TopicKind.STATE, b"acct-1")
    assert LEDGER_CODEC.views.decode(view.value or b"") == AccountView(
        "open", "EUR", 125, 0, 3, available=125
    )

    (outcome,) = result.outcomes
    assert outcome.outcome == "accepted"
    assert (outcome.offset, outcome.command_id, outcome.aggregate_id, outcome.command_type) == (
        10,
        "c-1",
        "acct-1",
        "Deposit",
    )
    assert outcome.code is None
    assert list(outcome.headers) == headers
    assert result.dlq == []
    assert result.next_offset == 11


def test_a_rejected_command_replies_and_is_remembered_without_state_change() -> None:
    committed = opened("acct-1")
    result = run(committed, [record(5, "acct-1", Withdraw(101), "c-1")])
    assert result.events == []
    (reply,) = replies(result)
    assert not reply.accepted
    assert reply.code == RejectionCode.INSUFFICIENT_FUNDS
    assert reply.version == 2
    assert outcomes(result) == [("rejected", "insufficient_funds")]
    assert result.changed == {}
    assert result.snapshots == result.views == []
    assert result.remembered == {encode_id_key("acct-1", "c-1"): result.replies[0].value}


def test_a_command_for_no_account_leaves_no_slot() -> None:
    result = run({}, [record(0, "ghost", Deposit(1), "c-1")])
    assert outcomes(result) == [("rejected", "unknown_account")]
    assert result.changed == {}
    assert result.snapshots == result.views == []


def test_events_of_one_batch_build_on_each_other() -> None:
    result = run(
        {},
        [
            record(0, "a", OPEN, "c-0"),
            record(1, "a", Deposit(10), "c-1"),
            record(2, "a", Withdraw(4), "c-2"),
            record(3, "a", Withdraw(7), "c-3"),
        ],
    )
    assert [LEDGER_CODEC.events.decode(e.value or b"")[0].sequence for e in result.events] == [
        1,
        2,
        3,
    ]
    assert outcomes(result)[-1] == ("rejected", "insufficient_funds")
    assert result.changed["a"].state == Account("open", "EUR", 6, 0)
    assert [r.version for r in replies(result)] == [1, 2, 3, 3]


def test_without_reply_to_the_remembered_reply_still_reaches_the_changelog() -> None:
    """No sender waits, but the id memory's changelog must hold it (lane 0), or a new disk
    would forget the id; a refusal that is not remembered is not written at all."""
    key = encode_id_key("a", "c-0")
    result = run({}, [record(0, "a", OPEN, "c-0", reply_to=None)], reply_lanes=2)
    assert [(r.partition, r.key) for r in result.replies] == [(0, key)]
    assert result.last_remembered == {0: key}
    assert len(result.events) == 1
    refused = run(
        {}, [record(0, "a", Deposit(1), "c-1", reply_to=None, first_attempt_ms=0)]
    )  # expired
    assert refused.replies == [] and refused.last_remembered == {}


def test_the_last_remembered_reply_per_replies_partition_is_marked() -> None:
    records = [
        record(0, "a", OPEN, "c-0", reply_to=0),
        record(1, "a", Deposit(1), "c-1", reply_to=1),
        record(2, "a", Deposit(1), "c-2", reply_to=0),
        record(3, "a", Deposit(1), "c-2", reply_to=1),  # a repeat: not a new mark
    ]
    result = run({}, records, reply_lanes=2)
    assert result.last_remembered == {0: encode_id_key("a", "c-2"), 1: encode_id_key("a", "c-1")}


def test_replies_go_to_the_senders_lane_of_this_partition() -> None:
    key = next(k for k in (f"k{i}" for i in range(100)) if partition_for(k.encode(), 4) == 2)
    result = run(
        {}, [record(0, key, OPEN, "c-0", reply_to=3)], partition=2, partitions=4, reply_lanes=5
    )
    assert [r.partition for r in result.replies] == [2 * 5 + 3]
    assert [e.partition for e in result.events] == [2]
    assert [s.partition for s in result.snapshots + result.views] == [2, 2]


# --- optimistic concurrency ----------------------------------------------------------------


def test_expected_version() -> None:
    committed = opened("a")
    result = run(
        committed,
        [
            record(0, "a", Deposit(1), "c-1", expected_version=2),
            record(1, "a", Deposit(1), "c-2", expected_version=2),
        ],
    )
    assert outcomes(result) == [("accepted", None), ("rejected", "version_conflict")]
    assert result.changed["a"].version == 3


def test_expected_version_zero_opens_a_new_account() -> None:
    result = run({}, [record(0, "a", OpenAccount("EUR"), "c-1", expected_version=0)])
    assert outcomes(result) == [("accepted", None)]


@pytest.mark.parametrize("expected", [0, 1, 3])
def test_expected_version_mismatch_is_a_conflict_and_says_the_version(expected: int) -> None:
    result = run(opened("a"), [record(0, "a", Deposit(1), "c-1", expected_version=expected)])
    assert outcomes(result) == [("rejected", FlowCode.VERSION_CONFLICT)]
    assert replies(result)[0].version == 2
    assert "account is at version 2" in replies(result)[0].message


def test_a_version_conflict_wins_over_the_domains_rules() -> None:
    result = run({}, [record(0, "a", Deposit(-1), "c-1", expected_version=4)])
    assert outcomes(result) == [("rejected", FlowCode.VERSION_CONFLICT)]


def test_error_headers() -> None:
    assert error_headers("app.commands", 3, 17, "malformed", "bad bytes") == [
        ("eventledger.error.topic", b"app.commands"),
        ("eventledger.error.partition", b"3"),
        ("eventledger.error.offset", b"17"),
        ("eventledger.error.code", b"malformed"),
        ("eventledger.error.message", b"bad bytes"),
    ]


# --- idempotency ---------------------------------------------------------------------------


def test_a_retry_in_the_same_batch_gets_the_same_reply_and_no_events() -> None:
    result = run(
        opened("a"), [record(0, "a", Deposit(5), "c-1"), record(1, "a", Deposit(5), "c-1")]
    )
    assert outcomes(result) == [("accepted", None), ("duplicate", None)]
    assert len(result.events) == 1
    assert result.replies[0].value == result.replies[1].value
    assert result.changed["a"].state.balance == 105


def test_a_retry_in_a_later_batch_gets_the_same_reply_and_no_events() -> None:
    committed, ids = opened("a"), Memory()
    first = run(committed, [record(0, "a", Deposit(5), "c-1")], ids=ids)
    commit(committed, ids, first)
    second = run(committed, [record(1, "a", Deposit(5), "c-1")], ids=ids, now_ms=NOW + 1000)
    assert outcomes(second) == [("duplicate", None)]
    assert second.events == []
    assert second.replies[0].value == first.replies[0].value
    assert second.changed == {} and second.remembered == {}
    assert second.snapshots == second.views == []


def test_a_retry_after_many_other_commands_on_a_busy_account_is_still_a_duplicate() -> None:
    committed, ids = opened("a"), Memory()
    commit(committed, ids, run(committed, [record(0, "a", Deposit(5), "first")], ids=ids))
    busy = [record(i, "a", Deposit(1), f"c-{i}") for i in range(1, 5001)]
    commit(committed, ids, run(committed, busy, ids=ids))
    again = run(committed, [record(6000, "a", Deposit(5), "first")], ids=ids)
    assert outcomes(again) == [("duplicate", None)]
    assert again.events == []


def test_a_retried_rejection_is_rejected_again_even_if_it_would_now_pass() -> None:
    committed, ids = opened("a"), Memory()
    first = run(committed, [record(0, "a", Withdraw(150), "c-1")], ids=ids)
    commit(committed, ids, first)
    commit(committed, ids, run(committed, [record(1, "a", Deposit(100), "c-2")], ids=ids))
    again = run(committed, [record(2, "a", Withdraw(150), "c-1")], ids=ids)
    assert outcomes(again) == [("duplicate", "insufficient_funds")]
    assert again.replies[0].value == first.replies[0].value


def test_a_duplicate_is_answered_on_the_retrys_reply_lane() -> None:
    ids = Memory()
    first = run({}, [record(0, "a", OPEN, "c-1", reply_to=0)], ids=ids, reply_lanes=2)
    commit({}, ids, first)
    retry = run(dict(first.changed), [record(1, "a", OPEN, "c-1", reply_to=1)], ids=ids,
                reply_lanes=2)  # fmt: skip
    assert outcomes(retry) == [("duplicate", None)]
    assert [(r.partition, r.value) for r in retry.replies] == [(1, first.replies[0].value)]


def test_command_ids_are_scoped_per_aggregate() -> None:
    result = run(
        opened("a", "b"), [record(0, "a", Deposit(1), "x"), record(1, "b", Deposit(1), "x")]
    )
    assert outcomes(result) == [("accepted", None), ("accepted", None)]
    assert [(r.command_id, r.aggregate_id) for r in replies(result)] == [("x", "a"), ("x", "b")]


def test_an_id_reused_for_another_command_is_refused_and_changes_nothing() -> None:
    committed, ids = opened("a"), Memory()
    first = run(committed, [record(0, "a", Deposit(5), "dep-1")], ids=ids)
    commit(committed, ids, first)
    for other in (Deposit(999), Withdraw(5)):
        reused = run(committed, [record(1, "a", other, "dep-1")], ids=ids)
        assert outcomes(reused) == [("rejected", IdCode.ID_REUSED)]
        assert reused.events == [] and reused.changed == {} and reused.remembered == {}
        (reply,) = reused.replies
        assert reply.key == UNREMEMBERED_KEY_PREFIX + encode_id_key("a", "dep-1")
    assert ids == first.remembered


def test_a_different_expected_version_is_another_command() -> None:
    committed, ids = opened("a"), Memory()
    commit(committed, ids, run(committed, [record(0, "a", Deposit(5), "c")], ids=ids))
    again = run(committed, [record(1, "a", Deposit(5), "c", expected_version=2)], ids=ids)
    assert outcomes(again) == [("rejected", IdCode.ID_REUSED)]


def test_a_first_attempt_older_than_the_window_is_expired_whether_seen_or_not() -> None:
    committed, ids = opened("a"), Memory()
    window = 60_000
    commit(committed, ids, run(committed, [record(0, "a", Deposit(5), "seen")], ids=ids))
    later = NOW + window + 1
    result = run(
        committed,
        [
            record(1, "a", Deposit(5), "seen", first_attempt_ms=NOW),
            record(2, "a", Deposit(5), "never-seen", first_attempt_ms=NOW),
            record(3, "a", Deposit(5), "fresh", first_attempt_ms=later - window),
        ],
        ids=ids,
        window_ms=window,
        now_ms=later,
    )
    assert outcomes(result) == [
        ("rejected", IdCode.EXPIRED),
        ("rejected", IdCode.EXPIRED),
        ("accepted", None),
    ]
    assert len(result.events) == 1
    assert list(result.remembered) == [encode_id_key("a", "fresh")]


def test_the_remembered_first_attempt_wins_over_the_one_a_retry_claims() -> None:
    committed, ids = opened("a"), Memory()
    commit(committed, ids, run(committed, [record(0, "a", Deposit(5), "c")], ids=ids))
    late = NOW + DAY_MS + 1
    retry = run(committed, [record(1, "a", Deposit(5), "c", first_attempt_ms=late)], ids=ids,
                now_ms=late)  # fmt: skip
    assert outcomes(retry) == [("rejected", IdCode.EXPIRED)]
    assert retry.events == []


def test_a_retry_inside_the_window_repeats_the_first_reply_byte_for_byte() -> None:
    committed, ids = opened("a"), Memory()
    first = run(committed, [record(0, "a", Withdraw(7), "w")], ids=ids)
    commit(committed, ids, first)
    edge = NOW + DAY_MS
    retry = run(committed, [record(1, "a", Withdraw(7), "w", first_attempt_ms=NOW)], ids=ids,
                now_ms=edge)  # fmt: skip
    assert retry.replies[0].value == first.replies[0].value


def test_a_first_attempt_ahead_of_the_clock_is_refused_unremembered() -> None:
    result = run(
        opened("a"),
        [record(0, "a", Deposit(5), "c", first_attempt_ms=NOW + MAX_CLOCK_SKEW_MS + 1)],
    )
    assert outcomes(result) == [("rejected", IdCode.FIRST_ATTEMPT_IN_FUTURE)]
    assert result.events == [] and result.remembered == {}
    skewed = run(
        opened("a"), [record(0, "a", Deposit(5), "c", first_attempt_ms=NOW + MAX_CLOCK_SKEW_MS)]
    )
    assert outcomes(skewed) == [("accepted", None)]


def test_the_memory_is_asked_once_per_batch() -> None:
    class Counting(Memory):
        calls = 0

        def lookup(self, keys: list[bytes]) -> list[bytes | None]:  # type: ignore[override]
            self.calls += 1
            return super().lookup(keys)

    ids = Counting()
    run(opened("a"), [record(i, "a", Deposit(1), f"c-{i}") for i in range(10)], ids=ids)
    assert ids.calls == 1


# --- poison records ------------------------------------------------------------------------


def dead_letter_headers(result: BatchResult) -> dict[str, bytes]:
    (dead,) = result.dlq
    return dict(dead.headers)


@pytest.mark.parametrize("value", [None, b"", b"\x00garbage\xff"])
def test_unreadable_records_are_dead_lettered_without_a_reply(value: bytes | None) -> None:
    poison = InRecord(42, b"a", value, [("traceparent", b"t")])
    result = run({}, [poison])
    (dead,) = result.dlq
    assert (dead.kind, dead.partition, dead.key, dead.value, dead.source_offset) == (
        TopicKind.DLQ,
        0,
        b"a",
        value,
        42,
    )
    headers = dead_letter_headers(result)
    assert headers["traceparent"] == b"t"
    assert headers["eventledger.error.topic"] == SOURCE.encode()
    assert headers["eventledger.error.partition"] == b"0"
    assert headers["eventledger.error.offset"] == b"42"
    assert headers["eventledger.error.code"] == b"malformed"
    assert headers["eventledger.error.message"]
    assert result.replies == result.events == result.snapshots == []
    (outcome,) = result.outcomes
    assert (outcome.outcome, outcome.code, outcome.command_id) == ("dlq", "malformed", None)


def hand_made(type_: str, payload: object, *, aggregate_id: str = "a") -> bytes:
    envelope = CommandEnvelope(
        "c-1", aggregate_id, type_, msgspec.Raw(msgspec.msgpack.encode(payload)), reply_to=0
    )
    return msgspec.msgpack.encode(envelope)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (hand_made("Teleport", {"amount": 1}), PoisonCode.UNKNOWN_COMMAND_TYPE),
        (hand_made("Deposit", {"amount": "lots"}), PoisonCode.INVALID_PAYLOAD),
    ],
)
def test_readable_poison_is_dead_lettered_and_rejected(value: bytes, code: PoisonCode) -> None:
    result = run(opened("a"), [InRecord(3, b"a", value)])
    assert dead_letter_headers(result)["eventledger.error.code"] == code.encode()
    (reply,) = replies(result)
    assert (reply.command_id, reply.accepted, reply.code, reply.version) == ("c-1", False, code, 2)
    assert outcomes(result) == [("dlq", code)]
    assert result.events == result.snapshots == []
    assert result.changed == {}


@pytest.mark.parametrize("key", [b"b", None, b""])
def test_a_key_that_is_not_the_aggregate_id_is_dead_lettered(key: bytes | None) -> None:
    miskeyed = msgspec.structs.replace(record(0, "a", Deposit(1), "c-1"), key=key)
    result = run(opened("a"), [miskeyed])
    assert result.dlq[0].key == key
    assert [r.code for r in replies(result)] == [PoisonCode.KEY_MISMATCH]
    assert outcomes(result) == [("dlq", "key_mismatch")]
    assert result.events == []


def test_a_command_for_another_partition_is_dead_lettered() -> None:
    elsewhere = next(k for k in (f"k{i}" for i in range(100)) if partition_for(k.encode(), 2) == 1)
    result = run({}, [record(0, elsewhere, OPEN, "c-1")], partition=0, partitions=2)
    assert [r.code for r in replies(result)] == [PoisonCode.WRONG_PARTITION]
    assert outcomes(result) == [("dlq", "wrong_partition")]
    assert result.events == result.snapshots == []


def test_a_reply_lane_that_does_not_exist_is_dead_lettered_without_a_reply() -> None:
    result = run({}, [record(0, "a", OPEN, "c-1", reply_to=2)], partitions=4, reply_lanes=2)
    assert outcomes(result) == [("dlq", "invalid_reply_to")]
    assert result.replies == result.events == []


def test_dead_letters_and_their_replies_stay_small_whatever_the_record() -> None:
    huge_key = b"k" * 600_000
    miskeyed = msgspec.structs.replace(record(0, "a", Deposit(1), "c-1"), key=huge_key)
    oversized = InRecord(1, b"a", b"\x00" * 900_000, [("h", b"x" * 20_000), ("t", b"y")])
    result = run(opened("a"), [miskeyed, oversized])
    assert outcomes(result) == [("dlq", "key_mismatch"), ("dlq", PoisonCode.TOO_LARGE)]
    first, second = result.dlq
    assert len(first.key or b"") == MAX_DLQ_KEY_BYTES
    assert dict(first.headers)["eventledger.error.key_bytes"] == b"600000"
    assert len(dict(first.headers)["eventledger.error.message"]) <= MAX_MESSAGE_CHARS
    (reply,) = result.replies  # the miskeyed one was readable; the oversized one was not
    assert len(reply.value or b"") < 2 * MAX_MESSAGE_CHARS
    assert len(second.value or b"") == MAX_DLQ_VALUE_BYTES
    headers = dict(second.headers)
    assert headers["eventledger.error.value_bytes"] == b"900000"
    assert headers["eventledger.error.headers_dropped"] == b"2"
    assert "h" not in headers


def test_poison_does_not_stop_the_batch() -> None:
    result = run(
        {},
        [
            record(0, "a", OPEN, "c-0"),
            InRecord(1, b"a", b"junk"),
            record(2, "a", Deposit(3), "c-2"),
        ],
    )
    assert outcomes(result) == [("accepted", None), ("dlq", "malformed"), ("accepted", None)]
    assert result.changed["a"].state.balance == 3


# --- snapshots and views -------------------------------------------------------------------


def test_one_snapshot_and_view_per_changed_aggregate_with_its_last_state() -> None:
    result = run(
        opened("a", "b", "c"),
        [
            record(0, "a", Deposit(1), "c-0"),
            record(1, "b", Deposit(2), "c-1"),
            record(2, "a", Deposit(3), "c-2"),
            record(3, "b", Withdraw(500), "c-3"),
            record(4, "a", Withdraw(4), "c-4"),
        ],
    )
    assert sorted(s.key or b"" for s in result.snapshots) == [b"a", b"b"]
    assert sorted(v.key or b"" for v in result.views) == [b"a", b"b"]
    for snapshot in result.snapshots:
        restored = LEDGER_CODEC.snapshots.decode(snapshot.value or b"")
        assert restored.slot == result.changed[restored.aggregate_id]
    balances = {
        (v.key or b"").decode(): LEDGER_CODEC.views.decode(v.value or b"").balance
        for v in result.views
    }
    assert balances == {"a": 100, "b": 102}


def test_closing_publishes_the_closed_view() -> None:
    committed = opened("a")
    result = run(
        committed, [record(0, "a", Withdraw(100), "w"), record(1, "a", CloseAccount(), "x")]
    )
    (view,) = result.views
    assert LEDGER_CODEC.views.decode(view.value or b"").status == "closed"


# --- the caller's state is never touched -----------------------------------------------------


def test_committed_is_not_mutated() -> None:
    committed = opened("a", "b")
    before = copy.deepcopy(committed)
    identities = {k: id(v) for k, v in committed.items()}
    result = run(
        committed,
        [
            record(0, "a", Deposit(1), "c-0"),
            record(1, "b", Withdraw(1), "c-1"),
            record(2, "new", OPEN, "c-2"),
            InRecord(3, b"a", b"junk"),
        ],
    )
    assert committed == before
    assert {k: id(v) for k, v in committed.items()} == identities
    assert set(result.changed) == {"a", "b", "new"}


def test_output_header_lists_are_not_shared() -> None:
    result = run({}, [record(0, "a", OPEN, "c-0"), record(1, "a", Deposit(1), "c-1")])
    lists = [out.headers for out in result.events + result.replies + result.snapshots]
    assert all(headers == [] for headers in lists)
    assert len({id(headers) for headers in lists}) == len(lists)


# --- batch contract ------------------------------------------------------------------------


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        run({}, [])


def test_offsets_must_increase() -> None:
    with pytest.raises(ValueError, match="offset"):
        run({}, [record(5, "a", OPEN, "c-0"), record(5, "a", Deposit(1), "c-1")])


def test_next_offset_follows_the_last_record() -> None:
    assert run({}, [record(3, "a", OPEN, "c-0"), InRecord(9, b"a", None)]).next_offset == 10


def test_a_record_set_aside_is_dead_lettered_and_refused_with_the_reason() -> None:
    result = set_aside(
        LEDGER_CODEC,
        record(7, "a", Deposit(5), "c-1"),
        "abort: Broker: Message size too large",
        partition=0,
        source_topic=SOURCE,
        events_offset=3,
        now_ms=NOW,
        seq=SEQ,
        window_ms=DAY_MS,
    )
    assert outcomes(result) == [("dlq", PoisonCode.UNPROCESSABLE)]
    (reply,) = replies(result)
    assert (reply.command_id, reply.code) == ("c-1", PoisonCode.UNPROCESSABLE)
    assert "too large" in reply.message
    assert result.events == result.snapshots == []
    assert result.next_offset == 8
    # remembered: a retry of the id gets the refusal again and is never executed
    ids = Memory(result.remembered)
    retry = run(opened("a"), [record(9, "a", Deposit(5), "c-1")], ids=ids)
    assert outcomes(retry) == [("duplicate", PoisonCode.UNPROCESSABLE)]
    assert retry.events == []


def test_a_dead_letter_never_copies_a_header_name_that_is_not_utf8() -> None:
    poison = InRecord(0, b"a", b"junk", [("\udcff\udcfe", b"x"), ("ok", b"y")])
    (dead,) = run({}, [poison]).dlq
    names = [name for name, _ in dead.headers]
    assert "ok" in names and "\udcff\udcfe" not in names
    for name in names:
        name.encode()  # all producible


def test_a_forwarded_command_set_aside_is_answered_as_the_client_command_it_wraps() -> None:
    client = record(4, "a", Deposit(5), "c-9")
    wrapped = InRecord(
        11,
        client.key,
        encode_forwarded(Forwarded(client.value or b"", 0, NOW - 5)),
        [kind_header(RecordKind.FORWARDED)],
        True,
    )
    result = set_aside(
        LEDGER_CODEC,
        wrapped,
        "abort: Broker: Message size too large",
        partition=1,
        source_topic=SOURCE,
        events_offset=0,
        now_ms=NOW,
        seq=SEQ,
        positions=(3, 11),
        window_ms=DAY_MS,
    )
    assert outcomes(result) == [("dlq", PoisonCode.UNPROCESSABLE)]
    (reply,) = replies(result)  # the client waiting for it is answered, not left to time out
    assert (reply.command_id, reply.aggregate_id) == ("c-9", "a")
    assert reply.code == PoisonCode.UNPROCESSABLE
    assert (result.next_offset, result.next_internal_offset) == (3, 12)
    # remembered under the client's id key (not a leg's): a retry gets the refusal again
    assert set(result.remembered) == {encode_id_key("a", "c-9")}
    assert not result.lost
