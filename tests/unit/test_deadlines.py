"""The deadline index: derived from state, updated by committed batches, cheap when idle."""

from ledger import LEDGER, Account, Pending
from topology.deadlines import Deadlines
from topology.envelopes import Slot

from .support import NOW


def account(*expiries: int | None) -> Slot:
    pending = {f"t{i}": Pending("out", "b", 1, at) for i, at in enumerate(expiries)}
    return Slot(Account("open", "EUR", 10, 0, len(expiries), 0, pending), 1)


def test_rebuilt_from_state_then_updated_by_batches() -> None:
    index = Deadlines(LEDGER)
    index.rebuild({"a": account(NOW + 5, NOW + 9), "b": account(None), "c": account()})
    assert index.next_at() == NOW + 5
    assert index.due(NOW + 4) == []
    assert index.due(NOW + 5) == ["a"]
    index.update([("a", account(NOW + 9)), ("c", account(NOW + 1))])
    assert index.due(NOW + 5) == ["c"]
    assert index.due(NOW + 9) == ["a", "c"]
    index.update([("a", account()), ("c", account())])
    assert (index.due(NOW + 100), index.next_at()) == ([], None)


def test_an_aggregate_without_deadlines_indexes_nothing() -> None:
    index = Deadlines(object())
    index.rebuild({"a": account(NOW)})
    assert index.due(NOW) == [] and index.next_at() is None
