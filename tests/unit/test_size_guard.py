"""The size guard (`topology.step.guard`): a batch never writes a snapshot or view record over
the limit. A command whose events would pass it is refused (`state_too_large`, remembered
like any decision) and nothing of it is applied; a leg that would is set aside, lost, its
money in flight until an operator settles it. A batch that writes nothing over the limit
runs once; one that would runs again with the guard on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec

from eventledger.settlement import forced_leg
from ledger import Deposit, PendingCreditNoted, Transfer, evolve
from ledger.rejections import RejectionCode
from topology.codec.aggregate import Codec
from topology.codec.replies import decode_answer, decode_entry
from topology.codes import FlowCode, PoisonCode
from topology.envelopes import Answered, Slot
from topology.settings import DAY_MS
from topology.step.batch import process_batch
from topology.step.records import BatchResult, InRecord

from .support import NOW, SOURCE, Memory, commit, record
from .test_transfer_step import Part, client_replies, internal_for, lose, on, opened

# --- a bag: an aggregate whose state grows with every item put in it --------------------------


class Put(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    item: str


class Empty(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    pass


class WasPut(msgspec.Struct, frozen=True, tag=True):
    item: str


class Emptied(msgspec.Struct, frozen=True, tag=True):
    pass


class Bag(msgspec.Struct, frozen=True, array_like=True):
    items: tuple[str, ...]


class BagView(msgspec.Struct, frozen=True):
    """Each item twice: a view larger than its state."""

    items: tuple[str, ...]
    again: tuple[str, ...]


class Decided(msgspec.Struct, frozen=True):
    events: list[WasPut | Emptied] = msgspec.field(default_factory=list)
    rejection: None = None
    sends: tuple[()] = ()
    final: bool = True


class BagAggregate:
    """Bags: `Put` an item in, `Empty` it; counts the decisions it makes."""

    name: Final = "bag"
    command_type: Final = Put | Empty
    event_type: Final = WasPut | Emptied
    state_type: Final = Bag
    view_type: Final = BagView
    state_schema_version: Final = 1
    event_schema_version: Final = 1
    upcasters: Final[Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]] = (
        MappingProxyType({})
    )

    def __init__(self) -> None:
        self.decided = 0

    def decide(self, state: Bag | None, command: Put | Empty) -> Decided:
        self.decided += 1
        return Decided([WasPut(command.item) if isinstance(command, Put) else Emptied()])

    def evolve(self, state: Bag | None, event: WasPut | Emptied) -> Bag:
        items = () if state is None else state.items
        return Bag((*items, event.item) if isinstance(event, WasPut) else ())

    def view(self, state: Bag, version: int) -> BagView:
        return BagView(state.items, state.items)


ITEM = "x" * 100
LIMIT = 500  # a bag's view passes it at its third item, its snapshot at its fifth


def bag_batch(
    codec: Codec, committed: Mapping[str, Slot], records: list[InRecord], ids: Memory
) -> BatchResult:
    return process_batch(
        codec,
        committed,
        records,
        partition=0,
        partitions=1,
        source_topic=SOURCE,
        events_offset=0,
        ids=ids,
        window_ms=DAY_MS,
        now_ms=NOW,
        seq=1,
        max_snapshot_bytes=LIMIT,
    )


def sizes(result: BatchResult) -> list[int]:
    return [len(r.value or b"") for r in (*result.snapshots, *result.views)]


def test_a_command_that_would_pass_the_limit_is_refused_and_nothing_of_it_applied() -> None:
    bags = BagAggregate()
    codec = Codec(bags)
    puts = [record(i, "b1", Put(ITEM), f"p{i}") for i in range(3)]
    small = record(3, "b1", Put("y"), "p3")
    other = record(4, "b2", Put(ITEM), "q0")
    result = bag_batch(codec, {}, [*puts, small, other], Memory())
    assert [(o.command_id, o.outcome, o.code) for o in result.outcomes] == [
        ("p0", "accepted", None),
        ("p1", "accepted", None),
        ("p2", "rejected", FlowCode.STATE_TOO_LARGE),
        ("p3", "accepted", None),
        ("q0", "accepted", None),
    ]
    assert result.changed["b1"] == Slot(Bag((ITEM, ITEM, "y")), 3)
    assert len(result.events) == 4, "none of the refused command's"
    assert max(sizes(result)) <= LIMIT
    refusal = decode_answer(result.replies[2].value or b"")
    assert refusal is not None and refusal.version == 2
    assert "view of 'b1'" in refusal.message and "over the limit of 500" in refusal.message
    assert bags.decided == 2 * 5, "run again, once, with the guard on"


def test_a_batch_within_the_limit_runs_once() -> None:
    bags = BagAggregate()
    result = bag_batch(Codec(bags), {}, [record(0, "b1", Put(ITEM), "p0")], Memory())
    assert result.outcomes[0].outcome == "accepted" and bags.decided == 1


def test_the_refusal_is_remembered_like_any_decision() -> None:
    bags = BagAggregate()
    codec = Codec(bags)
    committed: dict[str, Slot] = {}
    ids = Memory()
    commit(committed, ids, bag_batch(codec, committed, [record(0, "b1", Put(ITEM * 3), "p0")], ids))
    entry = decode_entry(ids[next(iter(ids))])
    assert isinstance(entry, Answered) and entry.reply.code == FlowCode.STATE_TOO_LARGE
    assert committed == {}, "an aggregate refused its first events has no slot"
    retry = bag_batch(codec, committed, [record(1, "b1", Put(ITEM * 3), "p0")], ids)
    assert [(o.outcome, o.code) for o in retry.outcomes] == [
        ("duplicate", FlowCode.STATE_TOO_LARGE)
    ]


def test_a_state_already_over_the_limit_is_never_written_again_until_it_shrinks() -> None:
    codec = Codec(BagAggregate())
    committed = {"b1": Slot(Bag((ITEM,) * 8), 8)}  # folded from events under a larger limit
    grown = bag_batch(codec, committed, [record(0, "b1", Put("y"), "p0")], Memory())
    assert grown.outcomes[0].code == FlowCode.STATE_TOO_LARGE and grown.snapshots == []
    emptied = bag_batch(codec, committed, [record(1, "b1", Empty(), "e0")], Memory())
    assert emptied.outcomes[0].outcome == "accepted"
    assert emptied.changed["b1"] == Slot(Bag(()), 9)


# --- a leg the guard refuses is lost, and its money stays in flight -----------------------------


TID = "r" * 100  # a long transfer id: a noted credit grows its target by it


def test_a_leg_that_would_pass_the_limit_is_set_aside_lost_and_settled_by_refund() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    reserve = p0.send(a, Transfer(b, 30, pending=True), TID)
    (note,) = internal_for(reserve, 1)
    slot = p1.committed[b]
    p1.max_snapshot_bytes = max(slot_sizes(p1.codec, b, slot))  # b as it is, and no more
    noted = Slot(evolve(slot.state, PendingCreditNoted(TID, a, 30, 3)), slot.version + 1)
    assert max(slot_sizes(p1.codec, b, noted)) > p1.max_snapshot_bytes
    lost = p1.deliver([note])
    assert [(o.outcome, o.code) for o in lost.outcomes] == [("dlq", PoisonCode.UNPROCESSABLE)]
    assert lost.events == [] and lost.snapshots == []
    assert TID not in {r.command_id for r in client_replies(lost)}, "its client waits"
    assert len(lost.dlq) == 1 and lost.dlq[0].value == note[1]
    assert len(p1.lost) == 1, "named in the checkpoint until an operator settles it"
    entry = decode_entry(next(iter(lost.remembered.values())))
    assert isinstance(entry, Answered) and entry.reply.code == PoisonCode.UNPROCESSABLE
    assert p0.committed[a].state.available == 70, "the reservation holds while the leg is lost"
    assert note[1] is not None
    forced = forced_leg(p1.codec, note[1], refund=True, operator="ops", reason="target too big")
    refused = p1.deliver([(note[0], forced)])
    assert p1.lost == frozenset()
    back = p0.deliver(internal_for(refused, 0))
    assert {(r.command_id, r.code) for r in client_replies(back)} == {
        (TID, RejectionCode.REFUSED_BY_OPERATOR)
    }
    assert p0.committed[a].state.available == 100 and p0.balances() + p1.balances() == 100


def test_a_settlement_the_guard_refuses_leaves_its_leg_lost_for_the_next_one() -> None:
    p0, p1 = Part(0), Part(1)
    a, b = on(0, "a"), on(1, "b")
    opened(p0, a, 100)
    opened(p1, b)
    (credit,) = internal_for(p0.send(a, Transfer(b, 30), "t1"), 1)
    lose(p1, credit)  # its transactions kept aborting
    assert credit[1] is not None
    redrive = forced_leg(p1.codec, credit[1], refund=False, operator="ops", reason="retry")
    p1.max_snapshot_bytes = max(slot_sizes(p1.codec, b, p1.committed[b])) - 1  # b is too big
    again = p1.deliver([(credit[0], redrive)])
    assert [(o.outcome, o.code) for o in again.outcomes] == [("dlq", PoisonCode.UNPROCESSABLE)]
    assert again.remembered == {}, "the leg is remembered as set aside already"
    assert len(p1.lost) == 1 and again.events == []
    p1.max_snapshot_bytes = 10_000
    done = p1.deliver([(credit[0], redrive)])
    assert [o.outcome for o in done.outcomes] == ["accepted"] and p1.lost == frozenset()
    assert p1.committed[b].state.balance == 30
    p0.deliver(internal_for(done, 0))
    assert p0.balances() + p1.balances() == 100 and p0.committed[a].state.sending == {}


def test_the_ledger_runs_with_the_default_limit() -> None:
    p0 = Part(0)
    a = on(0, "a")
    opened(p0, a, 100)
    assert p0.max_snapshot_bytes == 768 * 1024
    assert [o.outcome for o in p0.send(a, Deposit(5), "d").outcomes] == ["accepted"]


def slot_sizes(codec: Codec, account: str, slot: Slot) -> list[int]:
    """Bytes of `account`'s snapshot and view records at `slot`."""
    _, snapshot = codec.snapshots.record(account, slot, 0)
    return [len(snapshot), len(codec.views.encode(slot.state, slot.version))]
