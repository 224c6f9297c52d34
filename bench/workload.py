"""The input every system reads: the seeded workload, produced once into a source topic.

Commands are encoded with the project's codec (``encode_command``, ``reply_to`` = reply lane
0, so a command's reply lands on its own partition's replies partition), keyed by account id
and placed with our partitioner. The same pass
folds the commands through the domain (``LEDGER.decide`` / ``evolve``) to get the expected
outcome that every system's output is checked against.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer
from rich.progress import Progress

from bench.kafkaio import create_topics, producer_config
from eventledger.workload import Workload, money_moved
from ledger.aggregate import LEDGER
from topology.codec.commands import encode_command
from topology.partitioner import partition_for

__all__ = ["Expected", "commands", "produce_source"]

log = logging.getLogger(__name__)


@dataclass
class Expected:
    """What a correct system makes of the source topic."""

    records: int = 0
    per_partition: list[int] = field(default_factory=list)
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    balances: dict[str, int] = field(default_factory=dict)
    money: int = 0  # Σ accepted deposits − Σ accepted withdrawals

    def decide(self, states: dict[str, Any], account: str, command: Any) -> None:
        """Fold one command through the domain against ``states`` (updated in place) and
        count its outcome."""
        state = states.get(account)
        decision = LEDGER.decide(state, command)
        if decision.rejection is None:
            for event in decision.events:
                state = LEDGER.evolve(state, event)
            states[account] = state
            self.accepted += 1
            self.money += money_moved(command)
        else:
            self.rejected[str(decision.rejection.code)] += 1

    @property
    def events(self) -> int:
        """Every accepted ledger command emits exactly one event."""
        return self.accepted

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "per_partition": self.per_partition,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "accounts": len(self.balances),
            "money": self.money,
        }


def commands(workload: Workload) -> Iterator[tuple[str, str, Any]]:
    """(command id, account id, command): the openings, then the deposits and withdrawals."""
    for i, (account, command) in enumerate(workload.all()):
        yield f"c{workload.seed}-{i:09d}", account, command


def produce_source(
    bootstrap: str, topic: str, workload: Workload, partitions: int, progress: Progress
) -> Expected:
    """Create ``topic`` and fill it with the workload; return the expected outcome."""
    create_topics(bootstrap, [topic], partitions)
    total = workload.accounts + workload.commands
    task = progress.add_task("producing the commands", total=total)
    producer = Producer(producer_config(bootstrap))
    expected = Expected(per_partition=[0] * partitions)
    states: dict[str, Any] = {}
    owners: dict[str, int] = {}
    for n, (command_id, account, command) in enumerate(commands(workload), start=1):
        p = owners.get(account)
        if p is None:
            p = owners[account] = partition_for(account.encode(), partitions)
        value = encode_command(account, command, command_id=command_id, reply_to=0)
        producer.produce(topic, value, account.encode(), p)
        expected.per_partition[p] += 1
        expected.decide(states, account, command)
        if n % 10_000 == 0:
            producer.poll(0)
            progress.update(task, completed=n)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} commands were not delivered to {topic}")
    progress.update(task, completed=total)
    expected.records = total
    expected.balances = {k: s.balance for k, s in states.items()}
    log.info("source %s: %s", topic, expected.summary())
    return expected
