"""The partition's pause contract without a broker (``Switcher``, which the worker's pause,
resume and switch call): a resume names the generation it expects, and a switch needs the
pause still requested."""

from __future__ import annotations

import pytest

from actors.committed import Committed
from actors.generations import GenerationMismatchError, Switcher, checked_handover
from actors.member import Member
from actors.ray_state import CONTROL
from actors.shadow import Handover
from ledger import LEDGER
from topology.codec.aggregate import Codec
from topology.settings import Settings
from topology.store import SnapshotStore
from topology.topics import TopicKind, TopicLayout

SETTINGS = Settings.resolve(app_id="u", bootstrap_servers="127.0.0.1:1", environ={})


def _switcher(generation: int, *, held: bool) -> Switcher:
    codec = Codec(LEDGER)
    topics = {kind: TopicLayout.of(SETTINGS).name(kind) for kind in TopicKind}
    committed = Committed(codec, generation, topics, SnapshotStore(codec))
    return Switcher(SETTINGS, 0, committed, held=held)


def test_resume_refuses_another_generation_and_stays_paused() -> None:
    switcher = _switcher(3, held=True)
    with pytest.raises(GenerationMismatchError, match="serves generation 3"):
        switcher.resume(4)
    assert switcher.gate.requested
    switcher.resume(3)
    assert not switcher.gate.requested


def test_a_switch_is_refused_once_the_pause_was_lifted() -> None:
    switcher = _switcher(0, held=False)
    gate = switcher.gate
    assert gate.request(0, lambda: True)  # no loop thread here: "gone" ends the wait
    assert gate.hold_here()  # the loop parks between batches
    assert gate.parked
    gate.lift()  # then a resume races in before the switch
    with pytest.raises(RuntimeError, match="only while paused"):
        switcher.switch(1, object(), None, writer=None)  # type: ignore[arg-type]


def test_a_members_waiting_moves_never_hold_up_its_quick_asks() -> None:
    """A pause may wait its whole timeout on a commit the broker does not answer: the moves
    that wait on the loop run in the CONTROL group, apart from the default group's asks."""
    waiting = {"pause", "resume", "switch_generation", "unblock", "stop"}
    quick = {"stats", "position", "ready", "views"}
    group = {
        name: getattr(getattr(Member, name), "__ray_concurrency_group__", None)
        for name in waiting | quick
    }
    assert {name for name, g in group.items() if g == CONTROL} == waiting
    assert all(group[name] is None for name in quick)


def test_a_handover_short_of_the_committed_events_is_refused() -> None:
    """A read of the log's end made before a commit's markers landed lies below what the
    partition committed: a rebuild that stopped there misses that batch, and is refused."""
    codec = Codec(LEDGER)
    handover = Handover(0, 1, position=10, snapshots={}, replayed=0, seconds=0.0)

    def check(events_end: int, committed_end: int) -> SnapshotStore:
        return checked_handover(
            0,
            1,
            handover,
            events_end=events_end,
            committed_end=committed_end,
            states=SnapshotStore(codec),
            store=SnapshotStore(codec),
        )

    check(events_end=10, committed_end=9)  # the marker after the last event: offset 9
    with pytest.raises(RuntimeError, match="below the 12 its batches committed"):
        check(events_end=10, committed_end=12)
    with pytest.raises(RuntimeError, match="the events end at 11"):
        check(events_end=11, committed_end=9)
