"""The faults the nemesis injects, and the record of each (``eventledger.torture.nemesis``
injects them; ``eventledger.torture.broker_faults`` the ones on Kafka's nodes)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "CLUSTER_FAULTS",
    "CLUSTER_NODES",
    "Fault",
    "FaultRecord",
    "NemesisPlan",
    "check_brokers",
    "default_partitions",
    "parse_faults",
]


class Fault(StrEnum):
    KILL = "kill"
    STOP = "stop"
    BROKER = "broker"
    COORDINATOR = "coordinator"
    REBUILD = "rebuild"
    NODE = "node"
    HOSTILE = "hostile"
    LEADER = "leader"
    ISR = "isr"
    REPARTITION = "repartition"


CLUSTER_FAULTS: Final = frozenset({Fault.LEADER, Fault.ISR})
"""Faults on one node of a Kafka cluster: they need a quorum that outlives a node."""
CLUSTER_NODES: Final = 3
"""The nodes those faults need (a quorum of 3 voters and min ISR 2 survive one down)."""


def check_brokers(faults: Collection[Fault], brokers: int) -> None:
    """ValueError unless ``brokers`` Kafka nodes can take ``faults`` (a node fault needs a
    cluster of ``CLUSTER_NODES``)."""
    if brokers < 1:
        raise ValueError(f"brokers must be at least 1, got {brokers}")
    needy = sorted(f.value for f in faults if f in CLUSTER_FAULTS)
    if needy and brokers < CLUSTER_NODES:
        raise ValueError(f"the {', '.join(needy)} fault needs a cluster: --brokers {CLUSTER_NODES}")


def default_partitions(faults: Collection[Fault]) -> int:
    """The torture application's partition count: 4 when it is to be repartitioned (so
    that it grows 4 → 8 → 12), else 3."""
    return 4 if Fault.REPARTITION in faults else 3


def parse_faults(text: str) -> list[Fault]:
    """``"kill,broker"`` → the faults, in order, once each; ValueError names a bad one."""
    faults: list[Fault] = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        try:
            fault = Fault(name)
        except ValueError:
            known = ", ".join(f.value for f in Fault)
            raise ValueError(f"unknown fault {name!r} (known: {known})") from None
        if fault not in faults:
            faults.append(fault)
    return faults


@dataclass
class FaultRecord:
    """One injected fault. ``started``: when it struck (a signal sent, a node removed; before
    that, when it was chosen); ``ended`` is None while it lasts (a rebuild may outlive the
    nemesis's turn); ``ok`` is False when it could not be injected (``detail`` says why).
    ``partitions``: those it stopped answering (see ``eventledger.torture.gap``)."""

    kind: Fault
    started: float
    ended: float | None = None
    target: str = ""
    ok: bool = True
    detail: str = ""
    partitions: tuple[int, ...] = ()


@dataclass(frozen=True)
class NemesisPlan:
    interval: float = 8.0
    warmup: float = 4.0
    max_per_kind: int = 20
    stop_seconds: float = 3.0
    broker_down_seconds: float = 2.0
    node_down_seconds: float = 5.0
    leader_down_seconds: float = 3.0
    isr_timeout: float = 20.0
    """How long a stopped broker stays stopped waiting for the ISR to shrink, at most."""
    recovery_timeout: float = 60.0
