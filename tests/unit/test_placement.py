"""The placement plan: given observed actors and alive nodes, then these actions."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from topology.placement import (
    ActorPhase,
    Move,
    Observed,
    Replace,
    RetireStandby,
    Start,
    StartStandby,
    plan,
    plan_standbys,
)

RUNNING = ActorPhase.RUNNING


def running(**nodes: str) -> dict[int, Observed]:
    return {int(p[1:]): Observed(RUNNING, n) for p, n in nodes.items()}


def test_a_fresh_application_is_spread_over_the_nodes() -> None:
    actions = plan(4, {}, ["b", "a"], {})
    assert actions == [Start(0, "a"), Start(1, "b"), Start(2, "a"), Start(3, "b")]


def test_nothing_to_do_when_balanced() -> None:
    assert plan(3, running(p0="a", p1="b", p2="a"), ["a", "b"], {}) == []


def test_no_nodes_no_actions() -> None:
    assert plan(2, {}, [], {}) == []


def test_a_dead_actor_comes_back_on_its_node() -> None:
    observed = running(p0="a", p2="a", p3="b")
    observed[1] = Observed(ActorPhase.MISSING)
    assert plan(4, observed, ["a", "b"], {1: "b"}) == [Start(1, "b")]


def test_a_broken_actor_is_replaced() -> None:
    observed = running(p0="a")
    observed[1] = Observed(ActorPhase.BROKEN, "b")
    assert plan(2, observed, ["a", "b"], {}) == [Replace(1, "b", "its loop has stopped")]


def test_actors_of_a_lost_node_move_to_the_others() -> None:
    observed = running(p0="a", p1="b", p2="c", p3="a", p4="b", p5="c")
    actions = plan(6, observed, ["a", "b"], {})
    assert [type(a) for a in actions] == [Replace, Replace]
    assert {a.partition for a in actions} == {2, 5}
    assert Counter(a.node_id for a in actions if isinstance(a, Replace)) == {"a": 1, "b": 1}


def test_a_new_node_takes_load_one_move_at_a_time() -> None:
    observed = running(p0="a", p1="b", p2="a", p3="b")
    assert plan(4, observed, ["a", "b", "c"], {}) == [Move(3, "b", "c")]
    assert plan(4, observed, ["a", "b", "c"], {}, max_moves=4) == [Move(3, "b", "c")]
    observed = running(p0="a", p1="a", p2="a", p3="a")
    assert plan(4, observed, ["a", "b"], {}, max_moves=4) == [Move(3, "a", "b"), Move(2, "a", "b")]


def test_nothing_moves_while_an_actor_is_not_running() -> None:
    observed = running(p0="a", p1="a", p2="a")
    observed[3] = Observed(ActorPhase.STARTING, None)
    assert plan(4, observed, ["a", "b"], {3: "a"}) == []


def test_paced_partitions_start_one_at_a_time_the_others_at_once() -> None:
    observed = running(p0="a", p1="a")
    assert plan(6, observed, ["a"], {}, paced={2, 3, 4, 5}) == [Start(2, "a")]
    observed[2] = Observed(ActorPhase.STARTING, "a")
    assert plan(6, observed, ["a"], {}, paced={2, 3, 4, 5}) == []
    observed[2] = Observed(RUNNING, "a")
    assert plan(6, observed, ["a"], {}, paced={2, 3, 4, 5}) == [Start(3, "a")]
    del observed[1]  # a partition outside `paced` is not held back by the pacing
    observed[3] = Observed(ActorPhase.STARTING, "a")
    assert plan(6, observed, ["a"], {}, paced={2, 3, 4, 5}) == [Start(1, "a")]


def test_frozen_partitions_do_not_move() -> None:
    observed = running(p0="a", p1="a", p2="a")
    assert plan(3, observed, ["a", "b"], {}, frozen={2}) == [Move(1, "a", "b")]
    assert plan(3, observed, ["a", "b"], {}, frozen={0, 1, 2}) == []


def test_a_restarting_actor_on_a_live_node_is_left_to_ray() -> None:
    observed = running(p0="a")
    observed[1] = Observed(ActorPhase.RESTARTING, "b")
    assert plan(2, observed, ["a", "b"], {}) == []


@given(
    partitions=st.integers(1, 12),
    nodes=st.sets(st.sampled_from("abcdef"), min_size=1),
    placement=st.lists(st.sampled_from("abcdefg"), max_size=12),
)
def test_repeated_planning_converges_to_one_even_placement(
    partitions: int, nodes: set[str], placement: list[str]
) -> None:
    alive = sorted(nodes)
    observed = {p: Observed(RUNNING, n) for p, n in enumerate(placement[:partitions])}
    for _ in range(4 * partitions + 4):
        actions = plan(partitions, observed, alive, {})
        if not actions:
            break
        for a in actions:
            node = a.target if isinstance(a, Move) else a.node_id
            observed[a.partition] = Observed(RUNNING, node)
    assert plan(partitions, observed, alive, {}) == []
    assert set(observed) == set(range(partitions))
    assert all(o.node_id in nodes for o in observed.values())
    per_node = Counter(o.node_id for o in observed.values())
    counts = [per_node.get(n, 0) for n in alive]
    assert max(counts) - min(counts) <= 1


# -- standbys ------------------------------------------------------------------------------


def test_a_standby_starts_on_another_node_than_its_writer() -> None:
    writers = running(p0="a", p1="b")
    actions = plan_standbys(1, writers, {}, ["a", "b"], {})
    assert actions == [StartStandby(0, 1, "b"), StartStandby(1, 1, "a")]


def test_on_one_node_a_standby_runs_beside_its_writer() -> None:
    assert plan_standbys(1, running(p0="a"), {}, ["a"], {}) == [StartStandby(0, 1, "a")]


def test_standbys_go_to_the_least_loaded_other_node_and_count_as_load() -> None:
    writers = running(p0="a", p1="a", p2="b")
    actions = plan_standbys(1, writers, {}, ["a", "b", "c"], {})
    # p0's standby: b and c are not a; c is idler (b holds p2's writer); then p1's: b and c
    # hold one each, the lower id wins; p2's: a holds two, c one
    assert actions == [StartStandby(0, 1, "c"), StartStandby(1, 1, "b"), StartStandby(2, 1, "c")]


def test_a_standby_comes_back_on_the_node_it_ran_on() -> None:
    writers = running(p0="a")
    actions = plan_standbys(1, writers, {}, ["a", "b", "c"], {(0, 1): "c"})
    assert actions == [StartStandby(0, 1, "c")]


def test_counts_of_standbys_per_partition() -> None:
    writers = running(p0="a")
    assert plan_standbys(0, writers, {}, ["a", "b"], {}) == []
    two = plan_standbys(2, writers, {}, ["a", "b", "c"], {})
    assert two == [StartStandby(0, 1, "b"), StartStandby(0, 2, "c")]
    extra = {(0, 1): Observed(RUNNING, "b"), (0, 2): Observed(RUNNING, "c")}
    assert plan_standbys(1, writers, extra, ["a", "b", "c"], {}) == [
        RetireStandby(0, 2, "only 1 standbys are wanted")
    ]


def test_broken_stranded_or_misplaced_standbys_are_retired_then_started_again() -> None:
    writers = running(p0="a", p1="b", p2="a")
    standbys = {
        (0, 1): Observed(ActorPhase.BROKEN, "b"),
        (1, 1): Observed(RUNNING, "gone"),
        (2, 1): Observed(RUNNING, "a"),
    }
    actions = plan_standbys(1, writers, standbys, ["a", "b"], {})
    assert actions == [
        RetireStandby(0, 1, "its loop has stopped"),
        RetireStandby(1, 1, "its node gone is gone"),
        RetireStandby(2, 1, "it runs beside its writer while another node is alive"),
    ]
    retired = {k: Observed(ActorPhase.MISSING) for k in standbys}
    assert plan_standbys(1, writers, retired, ["a", "b"], {}) == [
        StartStandby(0, 1, "b"),
        StartStandby(1, 1, "a"),
        StartStandby(2, 1, "b"),
    ]


def test_starting_standbys_are_left_alone() -> None:
    standbys = {(0, 1): Observed(ActorPhase.STARTING, "a")}
    assert plan_standbys(1, running(p0="a"), standbys, ["a", "b"], {}) == []


@given(
    writers=st.dictionaries(st.integers(0, 7), st.sampled_from("abc"), max_size=8),
    alive=st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True),
    count=st.integers(0, 2),
)
def test_every_partition_gets_its_standbys_away_from_its_writer_when_it_can(
    writers: dict[int, str], alive: list[str], count: int
) -> None:
    observed = {p: Observed(RUNNING, n) for p, n in writers.items()}
    actions = plan_standbys(count, observed, {}, alive, {})
    starts = [a for a in actions if isinstance(a, StartStandby)]
    assert sorted((a.partition, a.member) for a in starts) == [
        (p, m) for p in sorted(writers) for m in range(1, count + 1)
    ]
    for a in starts:
        assert a.node_id in alive
        if len(set(alive) - {writers[a.partition]}) > 0:
            assert a.node_id != writers[a.partition]
