"""The batch step with slots (docs/design-repartition.md, stages 3 and 4), two partitions
simulated without a broker: forwarding of client commands and legs, a handoff, an install,
a batch cut inside a move's parts, the flows identity with moves, and exactly once across a
move (a retry answered from the moved memory, a credit leg forwarded after the handoff)."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import pytest

from ledger import Deposit, OpenAccount, Transfer
from topology.codec.keys import encode_id_key, encode_internal_id_key, encode_key
from topology.codec.replies import decode_answer
from topology.codec.state import decode_flows, encode_flows
from topology.codes import PoisonCode, SkipCode
from topology.envelopes import Reply, Slot
from topology.flows import Flows, wrapped
from topology.moves import (
    MAX_PART_BYTES,
    RECORD_HEADER,
    HandoffPart,
    MoveSlots,
    RecordKind,
    SlotRecord,
    decode_arrival,
    decode_departure,
    decode_forwarded,
    decode_part,
    encode_move,
    kind_header,
    record_kind,
)
from topology.routing import RoutingTable
from topology.settings import DAY_MS
from topology.step.aside import set_aside
from topology.step.batch import process_batch
from topology.step.records import BatchResult, InRecord, OutcomeKind, OutRecord

from .support import LEDGER_CODEC, NOW, SOURCE, Memory, record

SLOTS = 8
TABLE = RoutingTable.initial(2, SLOTS)  # slot s on partition s % 2


def in_slot(slot: int, prefix: str = "acct") -> str:
    """An account id whose slot is `slot`."""
    n = 0
    while TABLE.slot_of(f"{prefix}{n}".encode()) != slot:
        n += 1
    return f"{prefix}{n}"


@dataclass
class Node:
    """One partition with a slot record: its committed state, id memory and positions,
    installed after each batch as the actor does once a transaction commits."""

    partition: int
    committed: dict[str, Slot] = field(default_factory=dict)
    ids: Memory = field(default_factory=Memory)
    positions: tuple[int, int] = (0, 0)
    flows: Flows | None = None
    lost: frozenset[bytes] = frozenset()
    seq: int = 0
    clock_ms: int = NOW
    slots: SlotRecord = field(default_factory=lambda: SlotRecord.initial(0, TABLE))

    def __post_init__(self) -> None:
        self.slots = SlotRecord.initial(self.partition, TABLE)

    def batch(self, records: list[InRecord], now_ms: int = NOW) -> BatchResult:
        now_ms = max(now_ms, self.clock_ms)
        result = process_batch(
            LEDGER_CODEC,
            self.committed,
            records,
            partition=self.partition,
            partitions=2,
            source_topic=SOURCE,
            events_offset=0,
            ids=self.ids,
            window_ms=DAY_MS,
            now_ms=now_ms,
            seq=self.seq + 1,
            reply_lanes=2,
            positions=self.positions,
            flows=self.flows,
            lost=self.lost,
            routing=TABLE,
            slots=self.slots,
        )
        self.committed.update(result.changed)
        for gone in result.departed:
            del self.committed[gone]
        self.ids.update(result.remembered)
        self.flows = self.flows if result.flows is None else result.flows
        self.lost = self.lost if result.lost is None else result.lost
        self.slots = self.slots if result.slot_record is None else result.slot_record
        self.clock_ms = max(now_ms, result.clock_ms or 0)
        self.positions = (result.next_offset, result.next_internal_offset)
        self.seq += 1
        return result

    def send(self, account: str, command: object, command_id: str, lane: int = 0) -> BatchResult:
        sent = record(self.positions[0], account, command, command_id, reply_to=lane)  # type: ignore[arg-type]
        return self.batch([sent])

    def deliver(self, internal: list[OutRecord]) -> BatchResult:
        return self.batch(as_internal(self.positions[1], internal))

    def balances(self) -> int:
        return wrapped(sum(s.state.balance for s in self.committed.values() if s.state))


def as_internal(offset: int, records: list[OutRecord]) -> list[InRecord]:
    """`records` as read from an internal partition from `offset` on."""
    return [InRecord(offset + i, r.key, r.value, r.headers, True) for i, r in enumerate(records)]


def to(result: BatchResult, partition: int) -> list[OutRecord]:
    return [r for r in result.internal if r.partition == partition]


def request(node: Node, move: MoveSlots, offset: int | None = None) -> InRecord:
    at = node.positions[1] if offset is None else offset
    return InRecord(
        at, move.move_id.encode(), encode_move(move), [kind_header(RecordKind.MOVE)], True
    )


def replies(result: BatchResult) -> list[Reply]:
    answers = [decode_answer(r.value or b"") for r in result.replies]
    return [a for a in answers if a is not None]


def opened(node: Node, account: str, amount: int) -> None:
    node.send(account, OpenAccount("EUR"), f"open-{account}")
    node.send(account, Deposit(amount), f"dep-{account}")


# -- forwarding ---------------------------------------------------------------------------


def test_a_client_command_for_a_slot_owned_elsewhere_is_forwarded_and_answered_by_the_owner() -> (
    None
):
    p0, p1 = Node(0), Node(1)
    b = in_slot(1)  # p1's
    command = record(0, b, OpenAccount("EUR"), "c1", reply_to=1, headers=[("traceparent", b"t")])
    result = p0.batch([command])
    assert result.events == [] and result.replies == [] and result.changed == {}
    assert [(o.outcome, o.command_id) for o in result.outcomes] == [(OutcomeKind.FORWARDED, "c1")]
    (forward,) = to(result, 1)
    assert forward.key == encode_key(b)
    assert record_kind(forward.headers) is RecordKind.FORWARDED
    assert ("traceparent", b"t") in forward.headers
    wrapped_command = decode_forwarded(forward.value or b"")
    assert wrapped_command.value == command.value, "the command byte for byte"
    assert (wrapped_command.by, wrapped_command.read_ms) == (0, NOW)
    answered = p1.deliver([forward])
    (reply,) = replies(answered)
    assert (reply.command_id, reply.aggregate_id, reply.accepted) == ("c1", b, True)
    assert answered.replies[0].partition == 1 * 2 + 1, "the client's lane on the owner"
    assert encode_id_key(b, "c1") in answered.remembered, "judged as a client command"
    assert p1.committed[b].version == 1


def test_a_leg_for_a_slot_owned_elsewhere_is_forwarded_as_itself() -> None:
    p0, p1 = Node(0), Node(1)
    a, b = in_slot(0), in_slot(1)
    opened(p0, a, 100)
    opened(p1, b, 0)
    debit = p0.send(a, Transfer(b, 30), "t1")
    (credit,) = to(debit, 1)
    wrong = p0.deliver([credit])  # the credit reaches p0 by mistake
    (forward,) = to(wrong, 1)
    assert (forward.key, forward.value) == (credit.key, credit.value)
    assert record_kind(forward.headers) is None
    assert wrong.events == []
    done = p1.deliver([forward])
    assert p1.committed[b].state.balance == 30
    assert [(r.command_id, r.accepted) for r in replies(done) if r.command_id] == [("t1", True)]


def set_aside_on(node: Node, leg: InRecord) -> BatchResult:
    """The transaction that sets `leg` aside on `node` (it kept aborting there)."""
    return set_aside(
        LEDGER_CODEC,
        leg,
        "kept aborting",
        partition=node.partition,
        source_topic=SOURCE,
        events_offset=0,
        now_ms=NOW,
        seq=node.seq + 1,
        positions=node.positions,
        ids=node.ids,
        window_ms=DAY_MS,
        lost=node.lost,
        partitions=2,
        routing=TABLE,
        slots=node.slots,
    )


def test_only_the_owner_of_its_slot_sets_a_leg_aside_a_non_owner_forwards_it() -> None:
    """(Simulator seed 640.) A leg set aside where its slot is not owned would be lost there
    and its settlement, forwarded to the owner, refused: it is forwarded instead."""
    p0, p1 = Node(0), Node(1)
    a, b = in_slot(0), in_slot(1)
    opened(p0, a, 100)
    opened(p1, b, 0)
    (credit,) = to(p0.send(a, Transfer(b, 30), "t1"), 1)
    (misrouted,) = as_internal(p0.positions[1], [credit])
    aside = set_aside_on(p0, misrouted)
    (forward,) = to(aside, 1)
    assert (forward.key, forward.value) == (credit.key, credit.value)
    assert aside.dlq == [] and aside.replies == [] and not aside.lost
    assert aside.next_internal_offset == misrouted.offset + 1
    (owned,) = as_internal(p1.positions[1], [forward])
    lost = set_aside_on(p1, owned)
    assert to(lost, 0) == [] and len(lost.dlq) == 1
    assert lost.lost is not None and len(lost.lost) == 1


def test_a_forwarded_record_on_the_commands_topic_is_dead_lettered() -> None:
    p0, p1 = Node(0), Node(1)
    forward = to(p0.batch([record(0, in_slot(1), OpenAccount("EUR"), "c1")]), 1)[0]
    forged = InRecord(p1.positions[0], forward.key, forward.value, forward.headers)
    result = p1.batch([forged])
    assert [(o.outcome, o.code) for o in result.outcomes] == [("dlq", PoisonCode.FLOW_RECORD)]
    assert result.changed == {}


# -- the handoff --------------------------------------------------------------------------

MOVE = MoveSlots("m1", 1, (0, 2), 1)  # p0's slots 0 and 2 to p1 at version 1


def moved_world() -> tuple[Node, Node, list[str]]:
    """p0 with accounts in slots 0, 2 (moving) and 4 (staying), p1 with one in slot 1."""
    p0, p1 = Node(0), Node(1)
    accounts = [in_slot(0), in_slot(2), in_slot(0, "x"), in_slot(4)]
    for i, account in enumerate(accounts):
        opened(p0, account, 10 * (i + 1))
    opened(p1, in_slot(1), 5)
    return p0, p1, accounts


def test_a_move_request_hands_the_slots_off_in_one_batch() -> None:
    p0, _, accounts = moved_world()
    moving, staying = sorted(accounts[:3]), accounts[3]
    version_of = {a: p0.committed[a].version for a in moving}
    later = record(p0.positions[0], accounts[0], Deposit(1), "late")
    result = p0.batch([request(p0, MOVE), later])
    assert result.next_offset == later.offset, "the batch ends at the handoff"
    assert result.next_internal_offset == 1
    parts = [decode_part(r.value or b"") for r in to(result, 1)]
    assert result.internal[: len(parts)] == to(result, 1), "the parts come first"
    assert all(record_kind(r.headers) is RecordKind.HANDOFF for r in result.internal)
    (part,) = parts
    assert (part.move_id, part.version, part.slots, part.source) == ("m1", 1, (0, 2), 0)
    assert [k.decode() for k, _ in part.accounts] == moving
    assert part.moved == 10 + 20 + 30 and part.clock_ms == NOW
    assert {k for k, _ in part.ids} == {
        encode_id_key(a, c) for a in moving for c in (f"open-{a}", f"dep-{a}")
    }
    markers = [(r.key, decode_departure(r.value or b"")) for r in result.events]
    assert all(record_kind(r.headers) is RecordKind.DEPARTED for r in result.events)
    assert all(k == encode_key(m.aggregate_id) for k, m in markers)
    assert [(k.decode(), m.moved_to, m.sequence) for k, m in markers] == [
        (a, 1, version_of[a]) for a in moving
    ]
    assert {(r.key, r.value) for r in result.snapshots} == {(encode_key(a), None) for a in moving}
    assert {(r.key, r.value) for r in result.views} == {(encode_key(a), None) for a in moving}
    assert result.departed == frozenset(moving)
    assert result.slot_record is not None and result.slot_record.gave((0, 2), 1)
    assert result.slot_record.slots() == [4, 6]
    assert result.move_id == "m1"  # the writer reports this batch's time as the move's pause
    assert result.flows is not None and result.flows.moved_out == {1: 60}
    assert set(p0.committed) == {staying}
    assert p0.flows is not None and p0.balances() == p0.flows.balance()
    # the record after the request is read again, and now forwarded to the target
    again = p0.batch([later])
    assert [o.outcome for o in again.outcomes] == [OutcomeKind.FORWARDED]
    assert [r.partition for r in again.internal] == [1]


def test_a_copy_of_a_move_request_is_skipped() -> None:
    p0, _, _ = moved_world()
    p0.batch([request(p0, MOVE)])
    copy = p0.batch([request(p0, MOVE)])
    assert [(o.outcome, o.code) for o in copy.outcomes] == [("duplicate", SkipCode.STALE_MOVE)]
    assert copy.internal == [] and copy.events == [] and copy.slot_record is None
    assert copy.move_id is None
    foreign = p0.batch([request(p0, MoveSlots("m2", 2, (1,), 1))])  # slot 1 is p1's
    assert [o.code for o in foreign.outcomes] == [SkipCode.STALE_MOVE]


def test_a_lost_leg_to_an_aggregate_that_does_not_exist_moves_with_its_slot() -> None:
    """A leg set aside on the source for an aggregate it does not hold (a credit to no
    account) is lost in a moved slot: its key moves, so the operator's settlement, forwarded
    to the target, is done there (the simulator found it left behind: money in flight for
    good)."""
    p0, p1, _ = moved_world()
    gone = encode_internal_id_key(in_slot(2, "nobody"), "credit:1:2:x:t")
    kept = encode_internal_id_key(in_slot(4, "nobody"), "credit:1:2:x:u")
    p0.lost = frozenset({gone, kept})
    result = p0.batch([request(p0, MOVE)])
    (part,) = [decode_part(r.value or b"") for r in to(result, 1)]
    assert part.lost == (gone,)
    assert p0.lost == frozenset({kept})
    p1.deliver(to(result, 1))
    assert gone in p1.lost


def test_an_install_takes_the_slots_whole_and_the_money_moves_with_them() -> None:
    p0, p1, accounts = moved_world()
    moving = sorted(accounts[:3])
    before = {a: p0.committed[a] for a in moving}
    handoff = p0.batch([request(p0, MOVE)])
    other = record(p1.positions[0], in_slot(1), Deposit(1), "d")
    installed = p1.deliver(to(handoff, 1))
    assert {a: installed.changed[a] for a in moving} == before
    assert {r.key for r in installed.snapshots} == {encode_key(a) for a in moving}
    arrivals = [decode_arrival(r.value or b"") for r in installed.events]
    assert [(m.moved_from, m.move_id, m.sequence) for m in arrivals] == [
        (0, "m1", before[a].version) for a in moving
    ]
    assert installed.slot_record is not None and installed.slot_record.holds((0, 2), 1)
    assert installed.slot_record.slots() == [0, 1, 2, 3, 5, 7]
    assert installed.move_id == "m1"
    assert p1.flows is not None and p1.flows.moved_in == {0: 60}
    assert p0.flows is not None and p0.flows.moved_out[1] == p1.flows.moved_in[0]
    for node in (p0, p1):
        assert node.flows is not None and node.balances() == node.flows.balance()
    total = p0.balances() + p1.balances()
    assert total == sum(f.deposited - f.withdrawn for f in (p0.flows, p1.flows))
    assert p1.batch([other]).events, "p1 goes on"
    dup = p1.deliver(to(handoff, 1))
    assert [(o.outcome, o.code) for o in dup.outcomes] == [("duplicate", SkipCode.STALE_MOVE)]


def test_a_batch_cut_inside_a_moves_parts_is_refused_and_a_big_move_has_many_parts() -> None:
    p0, p1, accounts = moved_world()
    a = accounts[0]
    answered = next(v for k, v in p0.ids.items() if k == encode_id_key(a, f"open-{a}"))
    for i in range(20_000):  # ~2 MB of remembered ids
        p0.ids[encode_id_key(a, f"bulk-{i:05}")] = answered
    handoff = p0.batch([request(p0, MOVE)])
    parts = to(handoff, 1)
    assert len(parts) >= 2
    assert all(len(r.value or b"") <= MAX_PART_BYTES + 1_000 for r in parts)
    decoded = [decode_part(r.value or b"") for r in parts]
    assert [p.index for p in decoded] == list(range(len(parts)))
    assert [p.table is not None for p in decoded] == [True] + [False] * (len(parts) - 1)
    with pytest.raises(ValueError, match="inside the parts"):
        p1.deliver(parts[:-1])
    p1.deliver(parts)
    assert p1.ids[encode_id_key(a, "bulk-08999")] == answered


# -- exactly once across a move -----------------------------------------------------------


def test_a_retry_answered_before_the_move_gets_the_same_reply_bytes_on_the_target() -> None:
    p0, p1, accounts = moved_world()
    a = accounts[0]
    first = p0.send(a, Deposit(7), "once", lane=1)
    p1.deliver(to(p0.batch([request(p0, MOVE)]), 1))
    retry = p1.send(a, Deposit(7), "once", lane=1)
    assert retry.events == []
    assert [o.outcome for o in retry.outcomes] == [OutcomeKind.DUPLICATE]
    assert [r.value for r in retry.replies] == [r.value for r in first.replies]
    # sent by the old route, to p0: forwarded, then answered the same on p1
    old_route = p0.send(a, Deposit(7), "once", lane=1)
    assert [o.outcome for o in old_route.outcomes] == [OutcomeKind.FORWARDED]
    again = p1.deliver(to(old_route, 1))
    assert [r.value for r in again.replies] == [r.value for r in first.replies]
    assert p1.committed[a].state.balance == 10 + 7


def test_the_refusal_of_a_command_on_an_absent_account_moves_with_its_slot() -> None:
    """The simulator's seeds 357 and 375: an `unknown_account` refusal is remembered for an
    account the partition holds no state of; the handoff carries it (by slot, not by the
    accounts held), so a retry after the account was opened on the target is answered the
    same, never executed."""
    p0, p1, _ = moved_world()
    ghost = in_slot(2, "ghost")  # slot 2 moves; never opened on p0
    first = p0.send(ghost, Deposit(7), "early", lane=1)
    assert [r.value for r in first.replies] and first.events == []
    handoff = p0.batch([request(p0, MOVE)])
    (part,) = [decode_part(r.value or b"") for r in to(handoff, 1)]
    assert encode_id_key(ghost, "early") in {k for k, _ in part.ids}
    assert ghost not in {k.decode() for k, _ in part.accounts}
    p1.deliver(to(handoff, 1))
    p1.send(ghost, OpenAccount("EUR"), "open-ghost")
    retry = p1.send(ghost, Deposit(7), "early", lane=1)
    assert retry.events == [] and [o.outcome for o in retry.outcomes] == [OutcomeKind.DUPLICATE]
    assert [r.value for r in retry.replies] == [r.value for r in first.replies]
    assert p1.committed[ghost].state.balance == 0


def test_a_credit_that_reaches_the_source_after_the_handoff_is_forwarded_and_credited_once() -> (
    None
):
    p0, p1, accounts = moved_world()
    target = accounts[0]  # moves from p0 to p1
    source = in_slot(1, "src")
    opened(p1, source, 50)
    debit = p1.send(source, Transfer(target, 20), "t1")
    (credit,) = to(debit, 0)  # the old route: the target was on p0
    handoff = p0.batch([request(p0, MOVE)])
    forwarded = p0.deliver([credit])
    assert [o.outcome for o in forwarded.outcomes] == [OutcomeKind.FORWARDED]
    p1.deliver(to(handoff, 1))
    done = p1.deliver(to(forwarded, 1))
    assert p1.committed[target].state.balance == 10 + 20
    assert p1.committed[source].state.balance == 30 and p1.committed[source].state.sending == {}
    answers = {(r.command_id, r.accepted) for r in replies(done) if r.command_id}
    assert answers == {("t1", True)}, "the transfer's one answer (its entry and its reply)"
    again = p1.deliver([credit])  # a copy of the leg, now straight to the owner
    assert again.events == [], "credited once"
    for node in (p0, p1):
        assert node.flows is not None and node.balances() == node.flows.balance()


def test_a_part_carries_no_table_but_in_part_zero() -> None:
    with pytest.raises(ValueError):
        HandoffPart("m", 1, (0,), 0, 1, 2, table=TABLE)
    with pytest.raises(ValueError):
        HandoffPart("m", 1, (0,), 0, 0, 1)
    assert kind_header(RecordKind.MOVE) == (RECORD_HEADER, b"move")


def test_flows_of_before_moves_decode_and_the_identity_counts_the_moved_terms() -> None:
    old = msgspec.msgpack.encode([100, 10, {1: 5}, {1: 7}, {}])  # five fields: before moves
    flows = decode_flows(old)
    assert flows == Flows(100, 10, {1: 5}, {1: 7}, {})
    assert flows.moved_out == {} and flows.balance() == 100 - 10 - 5 + 7
    after = flows.moved(out=1, amount=30).moved(into=2, amount=4)
    assert after.balance() == flows.balance() - 30 + 4
    assert decode_flows(encode_flows(after)) == after
