"""The checker: what the clients were told against what the events topic holds.

Pure: it takes the history of ops (``torture.history``), the committed events (as
``EventFact``s, in log order per partition) and the balances the actors hold, and counts
anomalies. Nothing here does I/O, so every anomaly kind is unit-tested with fakes.

The invariants, one anomaly kind each (an op is one ``(account, command id)``, judged by the
FIRST reply its client got, because that is what a caller acts on):

- ``lost``: answered accepted, but no event carries its (account, id);
- ``duplicate``: more than one event carries one (account, id);
- ``phantom``: answered rejected, yet an event carries its (account, id); or an event whose
  (account, id) no client ever sent;
- ``crossed``: a reply whose account or id differs from the command it answered;
- ``unanswered``: no reply before the op's retry budget ran out;
- ``overdraft``: a balance below minus its overdraft limit (after any event, or in an actor);
- ``total``: the actors' balances, the fold of the events and the sum of accepted moves
  (plus unanswered ops that did take effect) are not all equal;
- ``mismatch``: an account whose balance in its actor differs from the fold of its events,
  or that two actors hold (a repartition's move done twice or not done);
- ``reuse``: an id reused on the same account with another command (the deliberate probe)
  was answered accepted or executed;
- ``transfer``: a transfer id without exactly one debit and then one credit or reversal, or
  a pending transfer posted, voided or expired more than once (``ledger.money``); a
  transfer answered accepted that its target never credited (or noted, when pending), or
  answered rejected yet credited;
- ``in_flight``: money still debited and neither credited nor reversed once quiet;
- ``flows``: a state-topic read (see ``flows_problems``) that does not add up.

A transfer's legs (the events its internal commands caused: credits, reversals, notes,
settlements, releases, expiries, confirmations, operators' settlements) carry leg ids, not
client ids: they are checked through the transfer, not as ops.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from eventledger.torture.history import Kind, Op
from ledger.events import (
    AccountOpened,
    Deposited,
    PendingCreditAwaited,
    PendingCreditNoted,
    PendingCreditPaired,
    PendingCreditReleased,
    PendingCreditSettled,
    PendingPosted,
    PendingReserved,
    PendingVoided,
    TransferCompleted,
    TransferCredited,
    TransferDebited,
    TransferForced,
    TransferReversed,
    Withdrawn,
)
from ledger.money import Money
from topology.flows import Flows, wrapped

__all__ = ["Anomaly", "CheckResult", "EventFact", "check", "fact", "flows_problems"]

EXAMPLES = 5
"""Examples kept per anomaly kind (for the report; the counts are complete)."""


class Anomaly(StrEnum):
    LOST = "lost"
    DUPLICATE = "duplicate"
    PHANTOM = "phantom"
    CROSSED = "crossed"
    UNANSWERED = "unanswered"
    OVERDRAFT = "overdraft"
    TOTAL = "total"
    MISMATCH = "mismatch"
    REUSE = "reuse"
    TRANSFER = "transfer"
    IN_FLIGHT = "in_flight"
    FLOWS = "flows"


@dataclass(frozen=True, slots=True)
class EventFact:
    """One committed event, reduced to what the checks need. ``amount`` is the deposit or
    withdrawal amount, or a transfer event's balance change (signed); ``overdraft_limit``
    is set by an account's opening; ``leg``: caused by a transfer's internal command (its
    command id is a leg id); ``where`` says where it is (partition, offset, sequence, time),
    for the examples."""

    aggregate_id: str
    command_id: str
    kind: Kind | None
    amount: int = 0
    overdraft_limit: int = 0
    where: str = ""
    leg: bool = False

    @property
    def move(self) -> int:
        if self.kind is Kind.DEPOSIT or self.kind is Kind.TRANSFER:
            return self.amount
        if self.kind is Kind.WITHDRAW:
            return -self.amount
        return 0


def fact(aggregate_id: str, command_id: str, event: Any, where: str = "") -> EventFact:
    """An ``EventFact`` from a decoded ledger event (other event types carry no money)."""
    match event:
        case AccountOpened(overdraft_limit=limit):
            return EventFact(aggregate_id, command_id, Kind.OPEN, 0, limit, where)
        case Deposited(amount=amount):
            return EventFact(aggregate_id, command_id, Kind.DEPOSIT, amount, where=where)
        case Withdrawn(amount=amount):
            return EventFact(aggregate_id, command_id, Kind.WITHDRAW, amount, where=where)
        case TransferDebited(amount=amount) | PendingPosted(amount=amount):
            return EventFact(aggregate_id, command_id, Kind.TRANSFER, -amount, where=where)
        case PendingReserved():
            return EventFact(aggregate_id, command_id, Kind.TRANSFER, where=where)
        case PendingVoided(reason=reason):
            leg = reason != "voided"  # expired or refused: the service's own commands
            return EventFact(aggregate_id, command_id, Kind.TRANSFER, where=where, leg=leg)
        case (
            TransferCredited(amount=amount)
            | TransferReversed(amount=amount)
            | PendingCreditSettled(amount=amount)
        ):
            return EventFact(aggregate_id, command_id, Kind.TRANSFER, amount, where=where, leg=True)
        case (
            PendingCreditNoted()
            | PendingCreditReleased()
            | PendingCreditAwaited()
            | PendingCreditPaired()
            | TransferCompleted()
            | TransferForced()
        ):
            return EventFact(aggregate_id, command_id, Kind.TRANSFER, where=where, leg=True)
    return EventFact(aggregate_id, command_id, None, where=where)


@dataclass
class CheckResult:
    """Anomaly counts (complete), a few examples of each, which ops each anomaly touched
    (for attributing them to faults), and the three totals."""

    counts: Counter[Anomaly] = field(default_factory=Counter)
    examples: dict[Anomaly, list[str]] = field(default_factory=lambda: defaultdict(list))
    op_anomalies: dict[int, set[Anomaly]] = field(default_factory=lambda: defaultdict(set))
    codes: Counter[str] = field(default_factory=Counter)
    ops: int = 0
    answered: int = 0
    accepted: int = 0
    retried: int = 0
    events: int = 0
    accounts: int = 0
    expected_total: int = 0
    events_total: int = 0
    actors_total: int | None = None
    transfers: int = 0  # transfer ids with an event
    state_reads: tuple[int, int] = (0, 0)  # state-topic reads checked, failed (faults)

    @property
    def ok(self) -> bool:
        return sum(self.counts.values()) == 0

    def flag(self, anomaly: Anomaly, example: str, op: Op | None = None) -> None:
        self.counts[anomaly] += 1
        if len(self.examples[anomaly]) < EXAMPLES:
            self.examples[anomaly].append(example)
        if op is not None:
            self.op_anomalies[op.op_id].add(anomaly)

    def crossed_and(self, anomaly: Anomaly) -> int:
        """Ops with ``anomaly`` that also got a crossed reply (so the crossing explains it)."""
        return sum(1 for found in self.op_anomalies.values() if {Anomaly.CROSSED, anomaly} <= found)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "anomalies": {a.value: self.counts[a] for a in Anomaly},
            "lost_with_crossed_reply": self.crossed_and(Anomaly.LOST),
            "phantom_with_crossed_reply": self.crossed_and(Anomaly.PHANTOM),
            "examples": {a.value: list(v) for a, v in self.examples.items() if v},
            "codes": dict(self.codes),
            "ops": self.ops,
            "answered": self.answered,
            "accepted": self.accepted,
            "retried": self.retried,
            "events": self.events,
            "accounts": self.accounts,
            "expected_total": self.expected_total,
            "events_total": self.events_total,
            "actors_total": self.actors_total,
            "transfers": self.transfers,
            "state_reads": list(self.state_reads),
        }


def check(
    ops: Sequence[Op],
    events: Iterable[EventFact],
    actor_balances: Mapping[str, int] | None,
    money: Money | None = None,
    flows: Sequence[str] = (),
    *,
    held_twice: Sequence[str] = (),
) -> CheckResult:
    """Count every anomaly of the run. ``actor_balances`` is None when the actors could not
    be asked (then ``total`` compares the fold with the accepted moves only); ``money`` is
    the money fold of the same events (transfers), ``flows`` the problems the state-topic
    reader found, ``held_twice`` the accounts two actors hold."""
    r = CheckResult(ops=len(ops))
    for account in held_twice:
        r.flag(Anomaly.MISMATCH, account)
    facts = list(events)
    r.events = len(facts)
    money = money or Money()
    r.transfers = len(money.legs)
    for problem in flows:
        r.flag(Anomaly.FLOWS, problem)
    for transfer_id in money.broken_transfers():
        r.flag(Anomaly.TRANSFER, f"{transfer_id}: {money.legs[transfer_id]}")
    if money.in_flight:
        stuck = ", ".join(money.unfinished_transfers()[:EXAMPLES])
        r.flag(Anomaly.IN_FLIGHT, f"{money.in_flight} in flight once quiet: {stuck}")
    by_key: dict[tuple[str, str], list[EventFact]] = defaultdict(list)
    for f in facts:
        if not f.leg:
            by_key[f.aggregate_id, f.command_id].append(f)
    ops_by_key: dict[tuple[str, str], list[Op]] = defaultdict(list)
    for op in ops:
        ops_by_key[op.account, op.command_id].append(op)

    for key, found in by_key.items():
        if len(found) > 1:
            first = ops_by_key.get(key, [None])[0]
            at = "; ".join(f.where for f in found if f.where)
            detail = f"{key[0]}/{key[1]}: {len(found)} events" + (f" ({at})" if at else "")
            r.flag(Anomaly.DUPLICATE, detail, first)
        if key not in ops_by_key:
            r.flag(Anomaly.PHANTOM, f"{key[0]}/{key[1]}: an event no client sent")

    expected = _check_ops(r, ops, by_key, ops_by_key, money.legs)

    balances, limits = _fold(r, facts)
    r.accounts = len(balances)
    r.expected_total = expected
    r.events_total = sum(balances.values())
    if actor_balances is not None:
        r.actors_total = sum(actor_balances.values())
        for account in sorted(set(balances) | set(actor_balances)):
            held, folded = actor_balances.get(account), balances.get(account)
            if held != folded:
                r.flag(Anomaly.MISMATCH, f"{account}: actor {held}, events {folded}")
            if held is not None and held < -limits.get(account, 0):
                r.flag(Anomaly.OVERDRAFT, f"{account}: actor holds {held}")
    totals = {r.expected_total, r.events_total}
    if r.actors_total is not None:
        totals.add(r.actors_total)
    if len(totals) > 1:
        r.flag(
            Anomaly.TOTAL,
            f"accepted moves {r.expected_total}, events {r.events_total}, actors {r.actors_total}",
        )
    return r


def _check_ops(
    r: CheckResult,
    ops: Sequence[Op],
    by_key: Mapping[tuple[str, str], list[EventFact]],
    ops_by_key: Mapping[tuple[str, str], list[Op]],
    legs: Mapping[str, list[str]],
) -> int:
    """Crossed replies, unanswered, lost and phantom ops; returns the sum of the moves that
    took effect as far as the callers know (accepted) or not (unanswered, yet in the events)."""
    expected = 0
    for op in ops:
        for a in op.answers:
            if a.aggregate_id != op.account or a.command_id != op.command_id:
                r.flag(
                    Anomaly.CROSSED,
                    f"{op.account}/{op.command_id} got the reply of "
                    f"{a.aggregate_id}/{a.command_id} ({'accepted' if a.accepted else a.code})",
                    op,
                )
        if op.attempts > 1:
            r.retried += 1
        key = (op.account, op.command_id)
        found = by_key.get(key, [])
        if op.probe and ops_by_key[key][0] is not op:
            _check_reuse(r, op, ops_by_key[key][0], found)
            continue
        answer = op.answer
        if answer is None or answer.at > op.deadline:
            r.flag(
                Anomaly.UNANSWERED,
                f"{op.account}/{op.command_id}: {op.attempts} tries from {op.started:.1f} s "
                f"to its budget's end at {op.deadline:.1f} s"
                + (
                    f" (it took effect: {found[0].where or 'an event'})" if found else " (no event)"
                ),
                op,
            )
            if found:
                expected += op.move  # it took effect, unbeknown to its caller
            continue
        r.answered += 1
        r.codes[answer.code or "accepted"] += 1
        if op.kind is Kind.TRANSFER:
            _check_transfer(r, op, answer.accepted, legs.get(op.command_id, []))
            r.accepted += answer.accepted
            continue
        if answer.accepted:
            r.accepted += 1
            expected += op.move
            if not found:
                r.flag(Anomaly.LOST, f"{op.account}/{op.command_id}: accepted, no event", op)
        elif found:
            r.flag(
                Anomaly.PHANTOM,
                f"{op.account}/{op.command_id}: answered {answer.code}, yet in the events",
                op,
            )
    return expected


def _check_transfer(r: CheckResult, op: Op, accepted: bool, legs: list[str]) -> None:
    """A transfer's answer against its legs: accepted exactly when its target credited it
    (noted it, when pending)."""
    landed = ("PendingCreditNoted" if op.pending else "TransferCredited") in legs
    if accepted and not landed:
        r.flag(Anomaly.TRANSFER, f"{op.account}/{op.command_id}: accepted, not landed", op)
    elif not accepted and landed:
        r.flag(Anomaly.TRANSFER, f"{op.account}/{op.command_id}: rejected, yet landed", op)


def flows_problems(
    views: Mapping[int, Mapping[str, int]], flows: Mapping[int, Flows], *, quiet: bool
) -> list[str]:
    """What does not add up in one read of the state topic: ``views`` the balances of the
    latest view of each account, by partition, and ``flows`` the latest flows record of
    each partition. Per partition (its views and flows are written in one transaction, so a
    read of it to its end is consistent): Σ balances = its flows' balance. Across partitions
    no read is a consistent cut, so only once ``quiet`` is every pair's money in flight
    (sent by p to q − received by q from p − refunded to p) checked to be 0. After a
    repartition's move (some ``moved_out``/``moved_in``) the pairs no longer balance one by
    one (a transfer's source may settle on its new partition): then, once quiet, every
    pair's moved money must have arrived (moved_out[p→q] = moved_in[q←p]) and the money in
    flight summed over all pairs must be 0."""
    problems = []
    for p in sorted(set(views) | set(flows)):
        held = wrapped(sum(views.get(p, {}).values()))
        expected = flows.get(p, Flows()).balance()
        if held != expected:
            problems.append(f"partition {p}: Σ balances {held}, flows say {expected}")
    if quiet and any(f.moved_out or f.moved_in for f in flows.values()):
        problems.extend(_moved_problems(flows))
    elif quiet:
        for p, f in sorted(flows.items()):
            for q, sent in sorted(f.sent.items()):
                back = f.refunded.get(q, 0)
                arrived = flows.get(q, Flows()).received.get(p, 0)
                if wrapped(sent - arrived - back):
                    problems.append(f"{p}→{q}: {sent - arrived - back} in flight once quiet")
    return problems


def _moved_problems(flows: Mapping[int, Flows]) -> list[str]:
    """Once quiet after moves: each pair's moved money arrived, and no money in flight
    over all pairs together."""
    problems = []
    pairs = {(p, q) for p, f in flows.items() for q in f.moved_out}
    pairs |= {(p, q) for q, f in flows.items() for p in f.moved_in}
    for p, q in sorted(pairs):
        out = flows.get(p, Flows()).moved_out.get(q, 0)
        arrived = flows.get(q, Flows()).moved_in.get(p, 0)
        if wrapped(out - arrived):
            problems.append(f"{p}→{q}: moved out {out}, moved in {arrived} once quiet")
    in_flight = wrapped(
        sum(
            sum(f.sent.values()) - sum(f.received.values()) - sum(f.refunded.values())
            for f in flows.values()
        )
    )
    if in_flight:
        problems.append(f"all pairs: {in_flight} in flight once quiet")
    return problems


def _check_reuse(r: CheckResult, op: Op, original: Op, found: list[EventFact]) -> None:
    """A reused id with another command must be refused and must change nothing."""
    answer = op.answer
    if answer is not None:
        r.answered += 1
        r.codes[answer.code or "accepted"] += 1
        if answer.accepted:
            r.flag(Anomaly.REUSE, f"{op.account}/{op.command_id}: reused id accepted", op)
    if any(f.kind != original.kind or f.amount != original.amount for f in found):
        r.flag(Anomaly.REUSE, f"{op.account}/{op.command_id}: reused id executed", op)


def _fold(r: CheckResult, facts: list[EventFact]) -> tuple[dict[str, int], dict[str, int]]:
    """Balances and overdraft limits from the events; flags any balance below its limit."""
    balances: dict[str, int] = {}
    limits: dict[str, int] = {}
    below: set[str] = set()
    for f in facts:
        if f.kind is Kind.OPEN:
            limits[f.aggregate_id] = f.overdraft_limit
        balance = balances.get(f.aggregate_id, 0) + f.move
        balances[f.aggregate_id] = balance
        if balance < -limits.get(f.aggregate_id, 0) and f.aggregate_id not in below:
            below.add(f.aggregate_id)
            r.flag(Anomaly.OVERDRAFT, f"{f.aggregate_id}: {balance} after {f.command_id}")
    return balances, limits
