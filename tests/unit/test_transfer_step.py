"""The batch step with transfers, two partitions simulated without a broker: routing of
internal commands (in the batch, or to the internal topic), one final reply, retries while
the saga runs, forged internal commands, and expiry on the partition's clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from eventledger.settlement import forced_leg
from ledger import CloseAccount, Deposit, OpenAccount, PostPending, Transfer
from ledger.aggregate import LEDGER
from ledger.events import TransferForced
from ledger.internal import CreditTransfer, leg_id
from ledger.rejections import RejectionCode
from topology.codec.aggregate import Codec
from topology.codec.keys import encode_id_key, encode_internal_id_key, encode_key
from topology.codec.replies import decode_answer, decode_entry
from topology.codes import FlowCode, SkipCode
from topology.envelopes import CommandEnvelope, Deferred, Position, Reply, Slot
from topology.flows import Flows
from topology.limits import MAX_SNAPSHOT_BYTES
from topology.partitioner import partition_for
from topology.settings import DAY_MS
from topology.step.aside import set_aside
from topology.step.batch import process_batch
from topology.step.records import BatchResult, InRecord, OutcomeKind, origin
from topology.topics import TopicKind

from .support import LEDGER_CODEC, NOW, SOURCE, Memory, record

PARTITIONS = 2


def encode_envelope(envelope: CommandEnvelope) -> bytes:
    return msgspec.msgpack.encode(envelope)


def on(partition: int, prefix: str) -> str:
    n = 0
    while partition_for(f"{prefix}{n}".encode(), PARTITIONS) != partition:
        n += 1
    return f"{prefix}{n}"


@dataclass
class Part:
    """One partition's committed state, id memory and positions."""

    partition: int
    committed: dict[str, Slot] = field(default_factory=dict)
    ids: Memory = field(default_factory=Memory)
    positions: tuple[int, int] = (0, 0)
    flows: Flows | None = None
    lost: frozenset[bytes] = frozenset()
    seq: int = 0  # batches committed
    codec: Codec = LEDGER_CODEC
    max_snapshot_bytes: int = MAX_SNAPSHOT_BYTES

    def balances(self) -> int:
        return sum(slot.state.balance for slot in self.committed.values() if slot.state)

    def batch(
        self, records: list[InRecord], now_ms: int = NOW, due: tuple[str, ...] = ()
    ) -> BatchResult:
        result = process_batch(
            self.codec,
            self.committed,
            records,
            partition=self.partition,
            partitions=PARTITIONS,
            source_topic=SOURCE,
            events_offset=0,
            ids=self.ids,
            window_ms=DAY_MS,
            now_ms=now_ms,
            seq=self.seq + 1,
            reply_lanes=2,
            positions=self.positions,
            due=due,
            flows=self.flows,
            lost=self.lost,
            max_snapshot_bytes=self.max_snapshot_bytes,
        )
        if result.flows is not None:
            self.flows = result.flows
        if result.lost is not None:
            self.lost = result.lost
        self.committed.update(result.changed)
        self.ids.update(result.remembered)
        self.positions = (result.next_offset, result.next_internal_offset)
        self.seq += 1
        return result

    def send(
        self,
        account: str,
        command: object,
        command_id: str,
        lane: int = 0,
        principal: str | None = None,
    ) -> BatchResult:
        offset = self.positions[0]
        sent = record(offset, account, command, command_id, reply_to=lane, principal=principal)  # type: ignore[arg-type]
        return self.batch([sent])

    def deliver(
        self, internal: list[tuple[bytes | None, bytes | None]], now_ms: int = NOW
    ) -> BatchResult:
        offset = self.positions[1]
        return self.batch(
            [InRecord(offset + i, k, v, (), True) for i, (k, v) in enumerate(internal)],
            now_ms=now_ms,
        )


def client_replies(result: BatchResult) -> list[Reply]:
    """The replies a client would take (an id in flight is no answer: it skips it)."""
    answers = [decode_answer(r.value or b"") for r in result.replies]
    return [a for a in answers if a is not None]


def internal_for(result: BatchResult, partition: int) -> list[tuple[bytes | None, bytes | None]]:
    out = [r for r in result.internal if r.partition == partition]
    assert all(r.kind is TopicKind.INTERNAL for r in out)
    return [(r.key, r.value) for r in out]


def opened(part: Part, account: str, amount: int = 0, currency: str = "EUR") -> None:
    part.send(account, OpenAccount(currency), f"open-{account}")
    if amount:
        part.send(account, Deposit(amount), f"dep-{account}")


def test_a_same_partition_transfer_commits_both_legs_in_one_batch_with_one_answer() -> None:
    p0 = Part(0)
    a, b = on(0, "a"), on(0, "b")
    opened(p0, a, 100)
    opened(p0, b)
    result = p0.send(a, Transfer(b, 40), "t1", lane=1)
    assert result.internal == []
    seq = 3  # a's open and deposit came first: its debit is a's third event
    credit, confirm = leg_id("credit", a, "t1", seq), leg_id("confirm", a, "t1", seq)
    assert [o.command_id for o in result.outcomes] == ["t1", credit, confirm]
    assert {a, b} == set(result.changed)
    assert (result.changed[a].state.balance, result.changed[b].state.balance) == (60, 40)
    assert result.changed[a].state.sending == {}, "the confirmation ended the transfer"
    answers = {(r.command_id, r.aggregate_id, r.accepted) for r in client_replies(result)}
    assert answers - {("", a, True)} == {("t1", a, True)}, "a leg's own entry names no command"
    answers_on = [(decode_answer(r.value or b""), r.partition) for r in result.replies]
    lanes = {(a.command_id, lane) for a, lane in answers_on if a is not None}
    assert lanes == {("t1", 1), ("", 0)}, "on the client's lane; a leg's own entry on lane 0"
    retry = p0.send(a, Transfer(b, 40), "t1", lane=0)
    assert client_replies(retry) == [decode_answer(result.remembered[encode_id_key(a, "t1")])]
    assert client_replies(retry)[0].command_id == "t1" and client_replies(retry)[0].accepted
    assert retry.events == []


def test_a_cross_partition_transfer_answers_from_the_target_and_retries_resend_the_credit() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    debit = p0.send(a, Transfer(b, 30), "t1", lane=1)
    assert client_replies(debit) == [], "never 'pending' for a plain transfer"
    credit = internal_for(debit, 1)
    assert len(credit) == 1
    retry = p0.send(a, Transfer(b, 30), "t1", lane=0)
    assert retry.events == [] and client_replies(retry) == []
    resent = internal_for(retry, 1)
    assert len(resent) == 1 and resent != credit, "the same leg, answering the retry's lane"
    first = p1.deliver(credit)
    (accepted,) = client_replies(first)
    assert (accepted.command_id, accepted.aggregate_id, accepted.accepted) == ("t1", a, True)
    assert first.replies[0].partition == 1 * 2 + 1
    # the target's commit answers: its position, with the source's version after the debit
    assert accepted.position == Position(1, p1.seq) and p1.seq != p0.seq
    assert accepted.version == p0.committed[a].version
    second = p1.deliver(resent)
    assert second.events == [], "a leg happens once"
    assert client_replies(second) == [accepted]
    assert second.replies[0].partition == 1 * 2 + 0
    assert p0.committed[a].state.balance + p1.committed[b].state.balance == 100
    assert p0.flows == Flows(deposited=100, sent={1: 30})
    assert p1.flows == Flows(received={0: 30})
    for part in (p0, p1):
        assert part.flows is not None and part.balances() == part.flows.balance()


def test_every_event_a_command_causes_names_its_principal_on_both_sides_of_a_transfer() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    debit = p0.send(a, Transfer(b, 30), "alice:t1", principal="alice")
    (leg,) = internal_for(debit, 1)
    assert LEDGER_CODEC.commands.decode(leg[1])[0].principal == "alice"
    credit = p1.deliver([leg])
    confirm = p0.deliver(internal_for(credit, 0))
    events = [r.value for r in (*debit.events, *credit.events, *confirm.events)]
    assert len(events) == 3, "debited, credited, completed"
    assert {LEDGER_CODEC.events.decode(v or b"")[0].principal for v in events} == {"alice"}
    assert {o.principal for o in (*debit.outcomes, *credit.outcomes)} == {"alice"}
    unsaid = p0.send(a, Deposit(5), "d2")
    (value,) = [r.value for r in unsaid.events]
    assert LEDGER_CODEC.events.decode(value or b"")[0].principal is None
    assert b"principal" not in (value or b""), "an event that names nobody is as before"


def test_a_refused_credit_is_refunded_and_answered_once_by_the_source() -> None:
    p0, p1 = Part(0), Part(1)
    a, ghost = on(0, "a"), on(1, "ghost")
    opened(p0, a, 100)
    debit = p0.send(a, Transfer(ghost, 30), "t1")
    refused = p1.deliver(internal_for(debit, 1))
    assert client_replies(refused) == [] and refused.events == []
    refund = p0.deliver(internal_for(refused, 0))
    (answer,) = {r.code for r in client_replies(refund)}
    assert answer == "unknown_account"
    assert p0.committed[a].state.balance == 100
    again = p0.send(a, Transfer(ghost, 30), "t1")
    assert {r.code for r in client_replies(again)} == {"unknown_account"}
    assert again.internal == [] and again.events == []
    assert p0.flows == Flows(deposited=100, sent={1: 30}, refunded={1: 30})
    assert p1.flows is None, "a refusal moves no money on the target"


def test_a_leg_lands_whenever_it_arrives_even_past_the_idempotency_window() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    debit = p0.send(a, Transfer(b, 30), "t1")
    late = NOW + 2 * DAY_MS  # the target was down longer than the window
    landed = p1.deliver(internal_for(debit, 1), now_ms=late)
    assert [o.outcome for o in landed.outcomes] == [OutcomeKind.ACCEPTED]
    assert p1.committed[b].state.balance == 30
    (answer,) = client_replies(landed)
    assert (answer.command_id, answer.accepted) == ("t1", True)
    assert p0.committed[a].state.sending != {}, "a's side waits for the confirmation"
    confirmed = p0.deliver(internal_for(landed, 0), now_ms=late)
    assert [o.command_id for o in confirmed.outcomes] == [leg_id("confirm", a, "t1", 3)]
    assert p0.committed[a].state.sending == {}
    assert p0.flows == Flows(deposited=100, sent={1: 30}), "a confirmation moves no money"


def test_a_resent_leg_the_memory_no_longer_holds_is_skipped_never_done_again() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    debit = p0.send(a, Transfer(b, 30), "t1")
    resent = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)
    p1.deliver(internal_for(debit, 1))
    p1.ids = Memory()  # the memory forgot the leg (past its retention)
    again = p1.deliver(resent)
    assert again.events == [] and again.changed == {} and again.internal == []
    (skipped,) = again.outcomes
    assert (skipped.outcome, skipped.code) == (OutcomeKind.DUPLICATE, SkipCode.FORGOTTEN_LEG)
    assert p1.committed[b].state.balance == 30, "credited once"


def test_legs_carry_the_internal_schema_version_and_a_newer_one_is_held_not_dead_lettered() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    ((key, value),) = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)
    assert value is not None
    envelope, _ = LEDGER_CODEC.commands.decode(value)
    assert envelope.schema_version == LEDGER.internal_schema_version == 3
    newer = encode_envelope(
        msgspec.structs.replace(envelope, schema_version=LEDGER.internal_schema_version + 1)
    )
    before = p1.positions
    held = p1.deliver([(key, newer)])
    assert held.held is not None and "upgrade" in held.held
    assert held.dlq == [] and held.outcomes == [] and held.events == []
    assert p1.positions == before, "read again once this worker is upgraded"
    landed = p1.deliver([(key, value)])  # the same leg, at the version this worker knows
    assert [o.outcome for o in landed.outcomes] == [OutcomeKind.ACCEPTED]
    assert p1.committed[b].state.balance == 30


def test_a_leg_written_before_versions_is_read_with_its_defaults() -> None:
    p1 = Part(1)
    b = on(1, "b")
    opened(p1, b)
    old = encode_envelope(
        CommandEnvelope(
            command_id="t0/credit",
            aggregate_id=b,
            type="CreditTransfer",
            payload=msgspec.Raw(
                msgspec.msgpack.encode(
                    {
                        "type": "CreditTransfer",
                        "transfer_id": "t0",
                        "source": "x",
                        "amount": 5,
                        "currency": "EUR",
                    }
                )
            ),
            first_attempt_ms=NOW,
        )
    )
    landed = p1.deliver([(b.encode(), old)])
    assert [o.outcome for o in landed.outcomes] == [OutcomeKind.ACCEPTED]
    assert p1.committed[b].state.balance == 5


def lose(part: Part, leg: tuple[bytes | None, bytes | None]) -> BatchResult:
    """Set the leg aside on `part` (its transactions kept aborting): it is lost."""
    key, value = leg
    result = set_aside(
        LEDGER_CODEC,
        InRecord(part.positions[1], key, value, (), True),
        "kept aborting",
        partition=part.partition,
        source_topic=SOURCE,
        events_offset=0,
        now_ms=NOW,
        seq=part.seq + 1,
        reply_lanes=2,
        positions=part.positions,
        ids=part.ids,
        window_ms=DAY_MS,
        lost=part.lost,
    )
    part.ids.update(result.remembered)
    part.positions = (result.next_offset, result.next_internal_offset)
    part.seq += 1
    if result.lost is not None:
        part.lost = result.lost
    return result


def test_a_lost_credit_redriven_by_an_operator_lands_once_and_names_who() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    (leg,) = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)
    lost = lose(p1, leg)
    assert len(lost.dlq) == 1 and len(p1.lost) == 1
    assert p1.committed[b].state.balance == 0
    assert leg[1] is not None
    forced = forced_leg(LEDGER_CODEC, leg[1], refund=False, operator="ops", reason="broker fixed")
    done = p1.deliver([(leg[0], forced)])
    assert [o.outcome for o in done.outcomes] == [OutcomeKind.ACCEPTED]
    assert p1.committed[b].state.balance == 30 and p1.lost == frozenset()
    events = [LEDGER_CODEC.events.decode(r.value or b"")[1] for r in done.events]
    assert events[0] == TransferForced("t1", a, "redrive", "ops", "broker fixed")
    (answer,) = client_replies(done)
    assert (answer.command_id, answer.accepted) == ("t1", True)
    again = p1.deliver([(leg[0], forced)])  # a second settlement of the same leg
    assert [(o.outcome, o.code) for o in again.outcomes] == [
        (OutcomeKind.DUPLICATE, SkipCode.NOT_SET_ASIDE)
    ]
    assert again.events == [] and p1.committed[b].state.balance == 30
    p0.deliver(internal_for(done, 0))
    assert p0.committed[a].state.sending == {}, "the confirmation ends the transfer"


def test_a_lost_credit_refunded_by_an_operator_goes_back_to_its_source() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    (leg,) = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)
    lose(p1, leg)
    assert leg[1] is not None
    forced = forced_leg(LEDGER_CODEC, leg[1], refund=True, operator="ops", reason="target gone")
    refused = p1.deliver([(leg[0], forced)])
    assert p1.committed[b].state.balance == 0 and p1.lost == frozenset()
    back = p0.deliver(internal_for(refused, 0))
    assert p0.committed[a].state.balance == 100 and p0.committed[a].state.sending == {}
    (answer,) = {(r.command_id, r.code) for r in client_replies(back)}  # one answer
    assert answer == ("t1", RejectionCode.REFUSED_BY_OPERATOR)
    assert p0.flows is not None and p0.flows.balance() == 100


def test_a_copy_of_a_done_leg_set_aside_is_not_lost() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    (leg,) = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)
    (copy,) = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)  # a retry resends it
    p1.deliver([leg])
    assert lose(p1, copy).lost is None, "the copy is never done: nothing is lost"
    assert p1.lost == frozenset()


def test_an_account_closes_only_once_its_transfers_have_landed() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 30)
    opened(p1, b)
    debit = p0.send(a, Transfer(b, 30), "t1")
    early = p0.send(a, CloseAccount(), "close-1")
    assert [r.code for r in client_replies(early)] == ["transfers_in_flight"]
    landed = p1.deliver(internal_for(debit, 1))
    p0.deliver(internal_for(landed, 0))
    closed = p0.send(a, CloseAccount(), "close-2")
    assert [(r.accepted, r.code) for r in client_replies(closed)] == [(True, None)]
    assert p0.committed[a].state.status == "closed"


def test_a_client_cannot_send_an_internal_command() -> None:
    p0 = Part(0)
    a = on(0, "a")
    opened(p0, a)
    forged = p0.send(a, CreditTransfer("x", "b", 1_000, "EUR"), "f1")
    assert forged.events == [] and forged.remembered == {}
    (reply,) = client_replies(forged)
    assert reply.code == FlowCode.FORGED_INTERNAL_COMMAND
    assert forged.outcomes[0].outcome == OutcomeKind.REJECTED


def test_a_client_command_on_the_internal_topic_is_dead_lettered() -> None:
    p0 = Part(0)
    a = on(0, "a")
    value = record(0, a, Deposit(5), "d").value
    result = p0.deliver([(encode_key(a), value)])
    assert result.events == [] and len(result.dlq) == 1
    assert p0.positions == (0, 1)


def test_expiry_is_a_tick_on_the_partition_clock() -> None:
    p0 = Part(0)
    a, b = on(0, "a"), on(0, "b")
    opened(p0, a, 100)
    opened(p0, b)
    held = p0.send(a, Transfer(b, 70, pending=True, timeout_ms=1_000), "t1")
    assert client_replies(held)[0].accepted
    assert p0.committed[b].state.pending_credits == 70
    tick = p0.batch([], now_ms=NOW + 1_000, due=(a,))
    expire, release = leg_id("expire", a, "t1", 3), leg_id("release", a, "t1", 3)
    assert [o.command_id for o in tick.outcomes] == [expire, release]
    # legs without an origin are remembered under their leg ids, but answer no client
    assert {r.command_id for r in client_replies(tick)} == {""}
    assert set(tick.remembered) == {
        encode_internal_id_key(a, expire),
        encode_internal_id_key(b, release),
    }
    assert p0.committed[a].state.pending_debits == 0
    assert p0.committed[b].state.pending_credits == 0
    late = p0.send(a, PostPending("t1"), "p1")
    assert client_replies(late)[0].code == "pending_expired"  # the account names how it ended
    assert p0.positions[1] == 0, "a tick reads nothing"


# --- the property: any interleaving of transfers, retries, deliveries and aborts ------------

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("transfer"),
            st.integers(0, 4),  # source (index into ACCOUNTS, 4 = unknown)
            st.integers(0, 4),
            st.integers(1, 80),
            st.integers(0, 1),  # reply lane
        ),
        st.tuples(st.just("retry"), st.integers(0, 50), st.integers(0, 1)),
        st.tuples(st.just("deliver"), st.integers(0, 1), st.integers(1, 3), st.booleans()),
    ),
    max_size=40,
)


class Two:
    """Two partitions, their internal topic partitions (in order), and every answer a
    client could take for each transfer id."""

    def __init__(self) -> None:
        self.parts = [Part(0), Part(1)]
        self.accounts = [on(0, "a"), on(0, "b"), on(1, "c"), on(1, "d"), on(1, "ghost")]
        for account in self.accounts[:4]:
            opened(self.home(account), account, 100)
        self.queues: list[list[tuple[bytes | None, bytes | None]]] = [[], []]
        self.sent: list[tuple[str, str, Transfer]] = []
        self.answers: dict[str, set[bytes]] = {}

    def home(self, account: str) -> Part:
        return self.parts[partition_for(account.encode(), PARTITIONS)]

    def took(self, part: Part, result: BatchResult) -> None:
        for q in (0, 1):
            self.queues[q].extend(internal_for(result, q))
        for r in result.replies:
            reply = decode_answer(r.value or b"")
            if reply is not None and reply.command_id.startswith("t"):
                self.answers.setdefault(reply.command_id, set()).add(r.value or b"")
        assert part.flows is not None and part.balances() == part.flows.balance()

    def transfer(self, source: str, command: Transfer, transfer_id: str, lane: int) -> None:
        part = self.home(source)
        self.took(part, part.send(source, command, transfer_id, lane=lane))

    def deliver(self, q: int, n: int, *, aborted: bool = False) -> None:
        part, batch = self.parts[q], self.queues[q][:n]
        if not batch:
            return
        if aborted:  # the transaction aborts: nothing installed, read again later
            saved = (dict(part.committed), Memory(part.ids), part.positions, part.flows)
            part.deliver(batch)
            part.committed, part.ids, part.positions, part.flows = saved
            return
        self.queues[q] = self.queues[q][n:]
        self.took(part, part.deliver(batch))

    def in_flight(self) -> int:
        f = [p.flows or Flows() for p in self.parts]
        return sum(
            f[p].sent.get(q, 0) - f[q].received.get(p, 0) - f[p].refunded.get(q, 0)
            for p in (0, 1)
            for q in (0, 1)
        )


@given(steps)
def test_transfers_land_once_and_answer_the_same_whatever_the_interleaving(
    plan: list[tuple[Any, ...]],
) -> None:
    two = Two()
    for step in plan:
        match step:
            case ("transfer", s, t, amount, lane) if s != 4:
                transfer_id = f"t{len(two.sent)}"
                command = Transfer(two.accounts[t], amount)
                two.sent.append((transfer_id, two.accounts[s], command))
                two.transfer(two.accounts[s], command, transfer_id, lane)
            case ("retry", index, lane) if two.sent:
                transfer_id, source, command = two.sent[index % len(two.sent)]
                two.transfer(source, command, transfer_id, lane)
            case ("deliver", q, n, aborted):
                two.deliver(q, n, aborted=aborted)
    while two.queues[0] or two.queues[1]:  # quiet: every leg delivered
        for q in (0, 1):
            two.deliver(q, len(two.queues[q]))
    assert two.in_flight() == 0
    assert sum(p.balances() for p in two.parts) == 400
    for transfer_id, values in two.answers.items():
        assert len(values) == 1, f"{transfer_id}: every answer the same bytes"
    for transfer_id, source, _ in two.sent:
        remembered = two.home(source).ids.get(encode_id_key(source, transfer_id))
        assert remembered is not None
        if isinstance(decode_entry(remembered), Deferred):  # answered by the target
            assert transfer_id in two.answers
        else:
            assert two.answers[transfer_id] == {remembered}


def test_outputs_of_an_internal_leg_and_a_command_at_the_same_offset_name_different_causes() -> (
    None
):
    """Commands and internal legs come from two topics whose offsets overlap; the trace of a
    command must never land on the events of a leg that happens to share its offset."""
    p0, p1 = Part(0), Part(1)
    a, b, c = on(0, "a"), on(1, "b"), on(1, "c")
    opened(p0, a, 100)
    opened(p1, b)
    opened(p1, c)
    (credit,) = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)
    offset = max(p1.positions)
    p1.positions = (offset, offset)  # the next command and the next leg share an offset
    both = p1.batch(
        [record(offset, c, Deposit(5), "d1", reply_to=0), InRecord(offset, *credit, (), True)]  # type: ignore[arg-type]
    )
    causes = {e.source_offset for e in both.events}
    assert causes == {origin(offset, False), origin(offset, True)} and len(causes) == 2
