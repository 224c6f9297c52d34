"""The coordinator's takeover: a dead writer's partition is handed to its best standby.

``take_over`` runs on the detector's thread (``actors.liveness``) the moment a writer's
liveness connection ends. It plans with ``topology.placement.plan_takeover`` over the
standbys as the last tick observed them, records ``PartitionRecord(writer=m, epoch=e+1)`` in
the control topic, and only then calls ``promote(e+1)`` on member m. While it records, a
throwaway producer of the partition's transactional id starts the broker's abort of the dead
writer's open transaction (``hasten_abort``), so the member's fence rarely meets an abort in
progress (librdkafka retries a refused fence after a fixed 500 ms). Without a candidate it
does nothing: Ray restarts the writer in place, or the place step replaces it (the restart
path). The member Ray restarts after a takeover reads the record and comes back a standby.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import msgspec
import ray
from confluent_kafka import KafkaException, Producer

from actors.kafka import producer_config
from actors.messages import PartitionStatus
from actors.ray_state import lookup_actor
from actors.supervisor import Observation
from topology.control import PartitionRecord
from topology.names import NAMESPACE, Names
from topology.placement import Candidate, Takeover, plan_takeover
from topology.settings import Settings

__all__ = ["ABORT_HEAD_START", "PROMOTE_SECONDS", "candidates", "hasten_abort", "take_over"]

log = logging.getLogger(__name__)

PROMOTE_SECONDS = 60.0
"""How long the coordinator waits for a promotion (a standby far behind reads its tail)."""


ABORT_HEAD_START = 0.12
"""Seconds the throwaway producer of ``hasten_abort`` lives: long enough for the broker to
take its request and abort (tens of ms on a quiet broker), well short of librdkafka's 500 ms
retry, so it has asked once and is closed before the promoted member fences."""


def hasten_abort(settings: Settings, partition: int, seconds: float = ABORT_HEAD_START) -> None:
    """Ask once for a producer id under ``partition``'s transactional id, then close. The
    broker answers by aborting the dead writer's open transaction (refusing the request
    while it does): the abort starts now, not when the promoted member fences. Safe: a
    producer id it gets is an epoch the member's own fence bumps; it never produces, and it
    is closed before ``take_over`` calls ``promote``. Errors are logged, never raised: the
    member's fence does the abort then."""
    txn = Names.of(settings).partition_txn(partition)
    try:
        probe = Producer(producer_config(settings, transactional_id=txn))
    except KafkaException as e:
        log.warning("partition %d: no abort ahead of the takeover (%s)", partition, e)
        return
    try:
        probe.init_transactions(seconds)
    except KafkaException:
        pass  # refused while the broker aborts, or timed out: the abort is under way
    finally:
        probe.close()


def candidates(tick: Observation, partition: int, dead: int) -> list[Candidate]:
    """The partition's members but ``dead`` as the takeover plan sees them at ``tick``: lag
    is the commit sequences between the writer's last reported one and theirs."""
    writer = tick.actual[partition].stats
    top = writer.seq if writer is not None else 0
    found = []
    for (p, m), a in sorted(tick.standbys.items()):
        if p != partition or m == dead or a.stats is None:
            continue
        following = a.stats.status is PartitionStatus.FOLLOWING
        lag = max(0, top - a.stats.seq)
        found.append(Candidate(m, a.observed.node_id, following, a.stats.generation, lag))
    return found


def take_over(
    settings: Settings,
    tick: Observation,
    record: PartitionRecord,
    dead: int,
    write: Callable[[PartitionRecord], None],
) -> Takeover | None:
    """Hand partition ``record.partition``, whose writer member ``dead`` died, to its best
    standby: record, then promote. Returns the takeover (None: no candidate, or the record
    names another writer already). Raises when the promotion fails (the record stands: the
    next tick sees the member broken and replaces it)."""
    p = record.partition
    if record.writer != dead:
        return None
    plan = plan_takeover(p, record.epoch, record.generation, candidates(tick, p, dead), tick.nodes)
    if plan is None:
        log.warning("partition %d: no standby can take over; the writer is restarted", p)
        return None
    began = time.monotonic()
    aborting = threading.Thread(target=hasten_abort, args=(settings, p), daemon=True)
    aborting.start()
    write(msgspec.structs.replace(record, writer=plan.member, epoch=plan.epoch))
    aborting.join(5.0)  # closed before the member fences: it never holds the id after
    recorded = time.monotonic()
    handle = lookup_actor(Names.of(settings).member_actor(p, plan.member), NAMESPACE)
    if handle is None:
        raise RuntimeError(f"partition {p} member {plan.member} is gone")
    status = ray.get(handle.promote.remote(plan.epoch), timeout=PROMOTE_SECONDS)
    log.warning(
        "partition %d: member %d took over from member %d at epoch %d (%s): recorded in "
        "%.0f ms, promoted in %.0f ms",
        p,
        plan.member,
        dead,
        plan.epoch,
        status,
        (recorded - began) * 1000,
        (time.monotonic() - recorded) * 1000,
    )
    return plan
