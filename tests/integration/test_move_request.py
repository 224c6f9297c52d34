"""A repartition's request on the real broker: the control transaction that records a move
REQUESTED carries its ``MoveSlots`` to internal[source], both read back committed or neither
(`docs/design-repartition.md`, a move's step 1)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors.admin import ensure_topics
from actors.audit import read_named_topic
from actors.control_store import ControlWriter, read_desired
from actors.kafka import KafkaClientError
from topology.control import MoveRecord, MoveState, RepartitionPhase, RepartitionRecord
from topology.moves import MoveSlots, RecordKind, decode_move, record_kind
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout


def _internal(settings: Settings) -> dict[int, list[Any]]:
    topic = TopicLayout.of(settings).name(TopicKind.INTERNAL)
    found: dict[int, list[Any]] = {p: [] for p in range(settings.partitions)}
    for msg in read_named_topic(settings, topic):
        found[msg.partition()].append(msg)
    return found


def _requested(move: MoveSlots, source: int, number: int) -> RepartitionRecord:
    return RepartitionRecord(
        number=number,
        from_partitions=2,
        to_partitions=4,
        slots=480,
        phase=RepartitionPhase.MOVING,
        requested_at=1.0,
        moves=(
            MoveRecord(
                move_id=move.move_id,
                source=source,
                target=move.target,
                slots=move.slots,
                version=move.version,
                state=MoveState.REQUESTED,
                requested_at=1.0,
            ),
        ),
    )


def test_a_request_commits_its_record_and_one_move_on_the_source_or_neither(
    bootstrap: str, app_id: str
) -> None:
    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=2, environ={}
    )
    ensure_topics(settings, TopicLayout.of(settings))
    writer = ControlWriter(settings)
    move = MoveSlots("1.0", 1, (1, 3, 5), 3)
    record = _requested(move, 1, 1)

    writer.write(record, requests=[(1, move)])

    assert read_desired(settings).repartition == record
    internal = _internal(settings)
    assert internal[0] == [] and len(internal[1]) == 1
    (msg,) = internal[1]
    assert msg.key() == b"1.0" and decode_move(msg.value()) == move
    assert record_kind(msg.headers()) is RecordKind.MOVE

    # A request to a partition the topic does not have fails the whole transaction: the
    # record produced before it in the same transaction is not committed either.
    bad = MoveSlots("2.0", 2, (2,), 3)
    with pytest.raises(KafkaClientError):
        writer.write(_requested(bad, 7, 2), requests=[(7, bad)])
    assert read_desired(settings).repartition == record
    assert [len(msgs) for msgs in _internal(settings).values()] == [0, 1]

    # The writer goes on: the next request commits as the first did.
    later = MoveSlots("1.1", 2, (7,), 2)
    following = msgspec.structs.replace(_requested(later, 0, 1), requested_at=2.0)
    writer.write(following, requests=[(0, later)])
    assert read_desired(settings).repartition == following
    internal = _internal(settings)
    assert [decode_move(m.value()) for m in internal[0]] == [later]
    assert [decode_move(m.value()) for m in internal[1]] == [move]
