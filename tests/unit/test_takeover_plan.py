"""The takeover plan: which standby becomes a dead writer's successor, and the standby members
once a standby writes."""

from __future__ import annotations

import msgspec

from topology.control import PartitionRecord, decode_control, encode_control
from topology.placement import (
    ActorPhase,
    Candidate,
    Observed,
    RetireStandby,
    StartStandby,
    Takeover,
    plan_standbys,
    plan_takeover,
    standby_members,
)


def following(member: int, node: str, lag: int, generation: int = 0) -> Candidate:
    return Candidate(member, node, following=True, generation=generation, lag=lag)


def test_the_following_standby_with_the_smallest_lag_takes_over_one_epoch_up() -> None:
    candidates = [following(1, "b", 40), following(2, "c", 3), following(3, "b", 3)]
    assert plan_takeover(0, 4, 0, candidates, ["a", "b", "c"]) == Takeover(0, 2, 5)


def test_a_standby_on_a_dead_node_restoring_or_of_another_generation_does_not() -> None:
    candidates = [
        following(1, "gone", 0),
        Candidate(2, "b", following=False, generation=0, lag=0),
        following(3, "b", 0, generation=1),
        Candidate(4, None, following=True, generation=0, lag=0),
    ]
    assert plan_takeover(1, 0, 0, candidates, ["a", "b"]) is None
    assert plan_takeover(1, 0, 0, [*candidates, following(5, "a", 9)], ["a", "b"]) == Takeover(
        1, 5, 1
    )


def test_without_standbys_there_is_no_takeover() -> None:
    assert plan_takeover(0, 0, 0, [], ["a"]) is None


def test_a_takeover_is_taken_at_any_lag() -> None:
    assert plan_takeover(0, 0, 2, [following(1, "a", 10**9, 2)], ["a"]) == Takeover(0, 1, 1)


def test_the_standby_members_are_all_but_the_writer() -> None:
    assert standby_members(1) == [1]
    assert standby_members(1, writer=1) == [0]
    assert standby_members(2, writer=1) == [0, 2]
    assert standby_members(0, writer=1) == []


def test_once_a_standby_writes_the_old_writer_is_its_standby() -> None:
    writers = {0: Observed(ActorPhase.RUNNING, "b")}
    # member 1 writes; member 0 (the old writer, restarted by Ray) follows: nothing to do
    standbys = {(0, 0): Observed(ActorPhase.RUNNING, "a")}
    assert plan_standbys(1, writers, standbys, ["a", "b"], {}, writer_members={0: 1}) == []
    # member 0 is gone for good: it is started again, away from the writer
    assert plan_standbys(1, writers, {}, ["a", "b"], {}, writer_members={0: 1}) == [
        StartStandby(0, 0, "a")
    ]
    # member 2 is one too many with one standby wanted
    extra = {(0, 0): Observed(ActorPhase.RUNNING, "a"), (0, 2): Observed(ActorPhase.RUNNING, "a")}
    assert plan_standbys(1, writers, extra, ["a", "b"], {}, writer_members={0: 1}) == [
        RetireStandby(0, 2, "only 1 standbys are wanted")
    ]


def test_a_record_keeps_its_writer_and_epoch_and_older_records_decode_without_them() -> None:
    record = PartitionRecord(3, generation=1, nodes={0: "a"}, writer=1, epoch=2)
    assert decode_control(encode_control(record)[1]) == record
    older = msgspec.msgpack.encode({"type": "partition", "partition": 3, "nodes": {1: "b"}})
    assert decode_control(older) == PartitionRecord(3, nodes={1: "b"}, writer=0, epoch=0)
