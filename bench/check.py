"""Each system's output, read back under read_committed and checked before its time counts.

A ledger system must answer every command exactly once with the expected outcome, and its
events must fold (with the domain's ``evolve``) to the expected balances: the money check is
Σ balances + in flight = Σ accepted deposits − Σ accepted withdrawals, and equal to
eventledger's, with nothing in flight once the run is over and every transfer debited once
and credited or reversed once (``ledger.money``). In-flight markers on the replies topic
(a saga's, never an answer) are not replies.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.kafkaio import count_records, read_records
from bench.workload import Expected
from ledger.aggregate import LEDGER
from ledger.money import Money
from topology.codec.aggregate import Codec
from topology.codec.replies import decode_answer

__all__ = ["Check", "CheckFailedError", "check_counts", "check_ledger_output"]

log = logging.getLogger(__name__)


class CheckFailedError(RuntimeError):
    """A system's output is wrong: its timing must not count."""


@dataclass
class Check:
    system: str
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def expect(self, what: str, actual: Any, wanted: Any) -> None:
        self.facts[what] = actual
        if actual != wanted:
            self.problems.append(f"{what}: got {_short(actual)}, expected {_short(wanted)}")

    def raise_if_failed(self) -> None:
        if self.problems:
            raise CheckFailedError(f"{self.system} output is wrong: " + "; ".join(self.problems))

    def summary(self) -> dict[str, Any]:
        return {"passed": self.passed, "facts": self.facts, "problems": self.problems}


def check_ledger_output(
    bootstrap: str,
    system: str,
    *,
    replies: str,
    events: str,
    partitions: int,
    expected: Expected,
    reference_balances: dict[str, int] | None = None,
    reply_lanes: int = 1,
) -> Check:
    """Replies (``partitions × reply_lanes`` partitions): one per command, outcomes as
    expected. Events: one per accepted command, folding to the expected balances (and to
    ``reference_balances``, eventledger's)."""
    check = Check(system)
    reply_partitions = range(partitions * reply_lanes)
    _check_replies(check, read_records(bootstrap, replies, reply_partitions), expected)
    codec = Codec(LEDGER)
    states: dict[str, Any] = {}
    versions: dict[str, int] = {}
    seen: set[str] = set()
    event_count = 0
    repeated = 0
    money = Money()
    for msg in read_records(bootstrap, events, range(partitions)):
        envelope, event = codec.events.decode(msg.value())
        money.add((event,))
        event_count += 1
        if envelope.command_id in seen:
            repeated += 1
        seen.add(envelope.command_id)
        aggregate_id = envelope.aggregate_id
        state = LEDGER.evolve(states.get(aggregate_id), event)
        version = versions[aggregate_id] = versions.get(aggregate_id, 0) + 1
        if version != envelope.sequence:
            check.problems.append(
                f"{aggregate_id}: event sequence {envelope.sequence} at version {version}"
            )
        states[aggregate_id] = state
    check.balances = {k: s.balance for k, s in states.items()}
    check.expect("events", event_count, expected.events)
    check.expect("commands with more than one event", repeated, 0)
    total = sum(check.balances.values())
    check.expect("Σ balances (folded events)", total, expected.money)
    check.expect("Σ balances + in flight", total + money.in_flight, money.expected_total)
    check.expect("money in flight at the end", money.in_flight, 0)
    check.expect("transfers not debited once and landed once", money.broken_transfers(), [])
    check.expect("accounts", len(check.balances), len(expected.balances))
    wrong = sum(1 for k, v in expected.balances.items() if check.balances.get(k) != v)
    check.expect("accounts whose balance differs from the reference", wrong, 0)
    if reference_balances is not None:
        differ = sum(1 for k, v in reference_balances.items() if check.balances.get(k) != v)
        check.expect("accounts whose balance differs from eventledger's", differ, 0)
    log.info("%s check: %s", system, check.summary())
    return check


def _check_replies(check: Check, records: Any, expected: Expected) -> None:
    """One reply per command, with the expected outcomes."""
    accepted = 0
    rejected: Counter[str] = Counter()
    answered: set[str] = set()
    duplicates = 0
    for msg in (m for m in records if m.value() is not None):  # not a touch (TOUCH_KEY)
        reply = decode_answer(msg.value())
        if reply is None:  # an id in flight: not an answer
            continue
        if reply.command_id in answered:
            duplicates += 1
            continue
        answered.add(reply.command_id)
        if reply.accepted:
            accepted += 1
        else:
            rejected[reply.code or "?"] += 1
    check.expect("commands answered", len(answered), expected.records)
    check.expect("duplicate replies", duplicates, 0)
    check.expect("accepted", accepted, expected.accepted)
    check.expect(
        "rejected", dict(sorted(rejected.items())), dict(sorted(expected.rejected.items()))
    )


def check_counts(
    bootstrap: str, system: str, partitions: int, wanted: dict[str, tuple[str, int]]
) -> Check:
    """Record counts only (``what`` → (topic, count)): for the raw pipe, which computes
    nothing and so has no balances to check."""
    check = Check(system)
    for what, (topic, count) in wanted.items():
        check.expect(what, count_records(bootstrap, topic, partitions), count)
    log.info("%s check: %s", system, check.summary())
    return check


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"
