"""What a torture run's check reads once the run is quiet: the committed events of every
partition (``settings.partitions`` of them: after a repartition, the grown count), the
balances the partition actors hold, and their forwarded records."""

from __future__ import annotations

import logging
import time

import ray

from actors.audit import read_events
from actors.messages import PartitionStats
from actors.ray_state import partition_actor
from eventledger.assembly import AGGREGATE
from eventledger.torture.checker import EventFact, fact
from ledger.money import Money
from topology.settings import Settings

__all__ = ["actor_balances", "forwarded", "read_facts"]

log = logging.getLogger(__name__)


def read_facts(settings: Settings) -> tuple[list[EventFact], Money]:
    """Every committed event, reduced (read_committed, from offset 0 to the end), and the
    money fold of them (transfers)."""
    for attempt in range(5):
        try:
            return _read_facts(settings)
        except Exception as e:  # the broker still settling after a restart
            log.warning("reading the events (attempt %d): %s", attempt + 1, e)
            time.sleep(2.0)
    return _read_facts(settings)


def _read_facts(settings: Settings) -> tuple[list[EventFact], Money]:
    facts, money = [], Money()
    # Each account's events in sequence order: after a repartition they lie on two partitions.
    events = sorted(
        read_events(settings, AGGREGATE),
        key=lambda e: (e.envelope.aggregate_id, e.envelope.sequence),
    )
    for e in events:
        where = f"p{e.partition}@{e.offset} seq {e.envelope.sequence} t={e.envelope.timestamp_ms}"
        facts.append(fact(e.envelope.aggregate_id, e.envelope.command_id, e.event, where))
        money.add((e.event,))
    return facts, money


def forwarded(settings: Settings) -> int | None:
    """Σ of the partitions' ``forwarded`` counters (None: not every partition answered)."""
    try:
        handles = [partition_actor(settings.app_id, p) for p in range(settings.partitions)]
        stats: list[PartitionStats] = ray.get([h.stats.remote() for h in handles], timeout=30)
    except Exception as e:  # an actor restarting: the figure is left out
        log.info("stats unavailable: %s", e)
        return None
    return sum(s.forwarded for s in stats)


def actor_balances(
    settings: Settings, timeout: float = 60.0
) -> tuple[dict[str, int], dict[str, int], list[str]] | None:
    """Every account's balance as its partition actor holds it (committed state), the
    partition holding it, and the accounts two actors hold (a move done twice or undone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            handles = [partition_actor(settings.app_id, p) for p in range(settings.partitions)]
            views: dict[str, int] = {}
            owners: dict[str, int] = {}
            twice: list[str] = []
            parts = ray.get([h.views.remote() for h in handles], timeout=30)
            for p, part in enumerate(parts):
                for k, v in part.items():
                    if k in owners:
                        twice.append(f"{k}: held by partitions {owners[k]} and {p}")
                    views[k], owners[k] = int(v.balance), p
            return views, owners, twice
        except Exception as e:  # an actor restarting: ask again
            log.info("views unavailable: %s", e)
            time.sleep(1.0)
    return None
