"""Money in flight, for operators: list the transfers debited and not yet settled, and
settle a lost leg by hand.

Everything is read from Kafka (read_committed), never from the actors: the state topic's
views (`AccountView.in_flight`, one latest view per account), the dead-letter topic and each
partition's latest checkpoint in its current snapshot generation. Invariants:
- a leg is reported lost only when it is both dead-lettered as `unprocessable` and its id key
  is in its partition's checkpoint `lost` set (a settled leg leaves the set; its dead letter
  stays);
- `settle` only produces the settlement `eventledger.settlement.forced_leg` builds; the
  partition does it once while the key is in `lost` and skips it otherwise, so settling twice
  moves no money twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import get_args

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from actors.audit import read_topic
from actors.control_store import read_desired
from actors.kafka import consumer_config, producer_config
from actors.routes import Routes
from actors.scan import scan_partition
from actors.watermarks import watermarks
from eventledger.settlement import forced_leg
from ledger import LEDGER
from ledger.internal import ForcedLeg, Leg
from ledger.state import InFlight
from topology.codec.aggregate import Codec
from topology.codec.checkpoint import CHECKPOINT_KEY, decode_checkpoint
from topology.codec.keys import encode_internal_id_key, encode_key
from topology.codec.wire import CodecError
from topology.codes import PoisonCode
from topology.flows import FLOWS_KEY
from topology.names import Names
from topology.routing import Router
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout

__all__ = [
    "DeadLetter",
    "FoundLeg",
    "InFlightTransfer",
    "LostLeg",
    "Settlement",
    "SettlementError",
    "SettlementRefusal",
    "find_lost",
    "in_flight",
    "join",
    "lost_keys",
    "settle",
]

log = logging.getLogger(__name__)

_CODE_HEADER = "eventledger.error.code"
_TAIL = 256  # records read back from a snapshots partition's end to find its checkpoint


class LostLeg(msgspec.Struct, frozen=True):
    """A leg of transfer (`source`, `transfer_id`) set aside on `partition` (its dead letter
    at `dlq_offset`), addressed to `aggregate`; `leg` is its type (`CreditTransfer`, ...)."""

    source: str
    transfer_id: str
    partition: int
    dlq_offset: int
    leg: str
    aggregate: str
    command_id: str


class InFlightTransfer(msgspec.Struct, frozen=True):
    """A transfer debited from `source` and not yet known to have landed at `target`."""

    source: str
    transfer_id: str
    target: str
    amount: int
    since_ms: int
    age_ms: int
    lost: tuple[LostLeg, ...] = ()


class Settlement(msgspec.Struct, frozen=True):
    """Forced legs sent for transfer (`source`, `transfer_id`); `settled`: every one was seen
    done (its key left the checkpoint's `lost` set) before the wait ended."""

    source: str
    transfer_id: str
    refund: bool
    operator: str
    reason: str
    legs: tuple[LostLeg, ...]
    settled: bool


class SettlementRefusal(StrEnum):
    """Why a settlement is not sent."""

    INVALID_REQUEST = "invalid_request"  # no operator or no reason
    NOT_LOST = "not_lost"  # the transfer is in flight, its legs still on their way
    UNKNOWN_TRANSFER = "unknown_transfer"  # not in flight, and nothing of it is lost


class SettlementError(ValueError):
    """A settlement that is not sent, and why (`code`). Picklable: it crosses Ray."""

    def __init__(self, code: SettlementRefusal, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[SettlementError], tuple[SettlementRefusal, str]]:
        return (type(self), (self.code, str(self)))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record of the dlq topic, as read."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class FoundLeg:
    """A lost leg, its record value as set aside, and its id key (in the `lost` set)."""

    leg: LostLeg
    value: bytes
    key: bytes


_LEGS = get_args(Leg)


def find_lost(
    codec: Codec, dead: Iterable[DeadLetter], lost: Mapping[int, frozenset[bytes]]
) -> list[FoundLeg]:
    """The legs among `dead` set aside (`unprocessable`) whose id key is still in their
    partition's `lost` set, once per key (the earliest dead letter: a settlement set aside
    names the same key). A leg's transfer is named by its payload's `transfer_id` and its
    `source` field or, for a leg addressed to the source, its aggregate id. Pure."""
    found: dict[tuple[int, bytes], FoundLeg] = {}
    for d in dead:
        if dict(d.headers).get(_CODE_HEADER) != PoisonCode.UNPROCESSABLE.encode():
            continue
        try:
            envelope, leg = codec.commands.decode(d.value)
        except CodecError:
            continue
        if isinstance(leg, ForcedLeg):
            leg = leg.leg
        if not isinstance(leg, _LEGS):
            continue
        key = encode_internal_id_key(envelope.aggregate_id, envelope.command_id)
        if key not in lost.get(d.partition, frozenset()) or (d.partition, key) in found:
            continue
        source = getattr(leg, "source", "") or envelope.aggregate_id
        kind, aggregate, command_id = type(leg).__name__, envelope.aggregate_id, envelope.command_id
        named = LostLeg(source, leg.transfer_id, d.partition, d.offset, kind, aggregate, command_id)
        found[d.partition, key] = FoundLeg(named, d.value or b"", key)
    return sorted(found.values(), key=lambda f: (f.leg.partition, f.leg.dlq_offset))


def join(
    views: Mapping[str, Sequence[InFlight]],
    lost: Sequence[LostLeg],
    *,
    now_ms: int,
    older_than_ms: int = 0,
) -> list[InFlightTransfer]:
    """The transfers in flight of `views` (account → its `InFlight` entries) at least
    `older_than_ms` old, each with its lost legs, oldest first. Pure."""
    by_transfer: dict[tuple[str, str], list[LostLeg]] = {}
    for leg in lost:
        by_transfer.setdefault((leg.source, leg.transfer_id), []).append(leg)
    rows = [
        InFlightTransfer(
            source,
            f.transfer_id,
            f.to,
            f.amount,
            f.since_ms,
            max(0, now_ms - f.since_ms),
            tuple(by_transfer.get((source, f.transfer_id), ())),
        )
        for source, entries in views.items()
        for f in entries
    ]
    rows = [r for r in rows if r.age_ms >= older_than_ms]
    return sorted(rows, key=lambda r: (r.since_ms, r.source, r.transfer_id))


# -- reading Kafka ---------------------------------------------------------------------------


def _views(settings: Settings, codec: Codec) -> dict[str, list[InFlight]]:
    """Every account's latest published `in_flight` entries (the state topic, to its end)."""
    latest: dict[bytes, bytes | None] = {}
    for msg in read_topic(settings, TopicKind.STATE):
        if msg.key() is not None and msg.key() != FLOWS_KEY:
            latest[msg.key()] = msg.value()
    views: dict[str, list[InFlight]] = {}
    for key, value in latest.items():
        if value is None:
            continue
        try:
            entries = list(codec.views.decode(value).in_flight)
        except CodecError as e:
            log.warning("state record %r: %s", key, e)
            continue
        if entries:
            views[key.decode(errors="replace")] = entries
    return views


def _dead_letters(settings: Settings) -> list[DeadLetter]:
    return [
        DeadLetter(m.partition(), m.offset(), m.key(), m.value(), m.headers() or [])
        for m in read_topic(settings, TopicKind.DLQ)
    ]


def lost_keys(settings: Settings, partitions: Iterable[int]) -> dict[int, frozenset[bytes]]:
    """Each partition's `lost` set, from the latest checkpoint of its current snapshot
    generation (the control topic's; 0 when there is none). Reads back from the end."""
    desired = read_desired(settings)
    layout = TopicLayout.of(settings)
    consumer = Consumer(
        consumer_config(
            settings,
            group_id=Names.of(settings).group("audit", unique=True),
            **{"enable.partition.eof": True},
        )
    )
    found: dict[int, frozenset[bytes]] = {}
    try:
        for p in partitions:
            topic = layout.snapshots(desired.partition(p).generation)
            low, high = watermarks(consumer, TopicPartition(topic, p))
            start, step, value = high, _TAIL, None
            while value is None and start > low:  # back from the end, 4 times further each
                start, step = max(low, high - step), step * 4
                for msg in scan_partition(consumer, TopicPartition(topic, p, start)):
                    if msg.key() == CHECKPOINT_KEY:
                        value = msg.value()
            found[p] = frozenset() if value is None else decode_checkpoint(value).lost
    finally:
        consumer.close()
    return found


def _lost(settings: Settings, codec: Codec) -> list[FoundLeg]:
    dead = _dead_letters(settings)
    if not dead:
        return []
    return find_lost(codec, dead, lost_keys(settings, sorted({d.partition for d in dead})))


def in_flight(
    settings: Settings, *, older_than_ms: int = 0, now_ms: int | None = None
) -> list[InFlightTransfer]:
    """Every transfer in flight at least `older_than_ms` old, oldest first, with its lost
    legs (set aside and not settled)."""
    codec = Codec(LEDGER)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    lost = [f.leg for f in _lost(settings, codec)]
    return join(_views(settings, codec), lost, now_ms=now, older_than_ms=older_than_ms)


def settle(
    settings: Settings,
    *,
    source: str,
    transfer_id: str,
    refund: bool,
    operator: str,
    reason: str,
    wait_s: float = 30.0,
) -> Settlement:
    """Send the settlement of every lost leg of transfer (`source`, `transfer_id`): refused
    so its money goes back (`refund`; a leg that moves no money to a target is delivered as it
    was) or delivered as it was; then wait up to `wait_s` for each to be done. Raises
    SettlementError when nothing is lost, or without an operator and a reason."""
    if not operator.strip() or not reason.strip():
        raise SettlementError(
            SettlementRefusal.INVALID_REQUEST, "a settlement names its operator and its reason"
        )
    codec = Codec(LEDGER)
    legs = [
        f
        for f in _lost(settings, codec)
        if (f.leg.source, f.leg.transfer_id) == (source, transfer_id)
    ]
    if not legs:
        raise _nothing_lost(settings, codec, source, transfer_id)
    topic = TopicLayout.of(settings).name(TopicKind.INTERNAL)
    failed: list[str] = []

    def delivered(error: KafkaError | None, _msg: object) -> None:
        if error is not None:
            failed.append(error.str())

    producer = Producer(producer_config(settings))
    router = _published_router(settings)
    for found in legs:
        value = forced_leg(codec, found.value, refund=refund, operator=operator, reason=reason)
        key = encode_key(found.leg.aggregate)
        producer.produce(topic, value, key, router.partition_of(key), on_delivery=delivered)
    if producer.flush(30) or failed:
        raise RuntimeError(f"the settlement was not stored by Kafka: {failed or 'timed out'}")
    action = "refund" if refund else "credit"
    log.warning("transfer %s of %s: %d lost leg(s) sent, %s by %s: %s", transfer_id, source,
                len(legs), action, operator, reason)  # fmt: skip
    settled = _wait_done(settings, {(f.leg.partition, f.key) for f in legs}, wait_s)
    named = tuple(f.leg for f in legs)
    return Settlement(source, transfer_id, refund, operator, reason, named, settled)


def _published_router(settings: Settings) -> Router:
    """The router of the application's published routing (the control topic's)."""
    return Routes.of(read_desired(settings), settings.partitions).router


def _wait_done(settings: Settings, keys: set[tuple[int, bytes]], wait_s: float) -> bool:
    """True once no key is in its partition's `lost` set (checked until `wait_s`)."""
    deadline = time.monotonic() + wait_s
    while True:
        lost = lost_keys(settings, sorted({p for p, _ in keys}))
        if not any(key in lost[p] for p, key in keys):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _nothing_lost(
    settings: Settings, codec: Codec, source: str, transfer_id: str
) -> SettlementError:
    entries = _views(settings, codec).get(source, [])
    flight = next((f for f in entries if f.transfer_id == transfer_id), None)
    if flight is None:
        return SettlementError(
            SettlementRefusal.UNKNOWN_TRANSFER,
            f"transfer {transfer_id!r} of {source!r} is not in flight and none of its legs is lost",
        )
    p = _published_router(settings).partition_of(encode_key(flight.to))
    return SettlementError(
        SettlementRefusal.NOT_LOST,
        f"transfer {transfer_id!r} of {source!r} is in flight, not lost: its leg is still on "
        f"its way to {flight.to!r}; wait, or see partition {p} (`eventledger status`)",
    )
