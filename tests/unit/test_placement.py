"""The placement plan: given observed actors and alive nodes, then these actions."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from topology.placement import ActorPhase, Move, Observed, Replace, Start, plan

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
