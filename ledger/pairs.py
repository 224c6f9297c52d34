"""A pending transfer's two legs at its target, in either order (docs/design-repartition.md,
"Money across a move").

Every note (`NotePendingCredit`) pairs with exactly one end from its source: a release or a
settlement, sent when the source gives the reservation up (void, expiry, posting, or the
target's refusal of the note while the source still holds it). Across a move the end can
overtake its note (the note waits on the old owner's internal topic to be forwarded; the
end, sent by a newer table, goes straight to the new owner), so the target takes the legs in
either order:

- an end that finds no credit noted and nothing awaited leaves its transfer awaiting its
  note (`PendingCreditAwaited` "note"); the note, when it comes, is taken as ended: it
  notes nothing (`PendingCreditPaired`), so no pending credit is left that nothing ends;
- a refused note leaves its transfer awaiting its end ("end"), and tells the source so
  (`VoidRefusedPending.end`); the end consumes it (`PendingCreditPaired`).

So an entry lives one trip of a leg and the state holds none once its legs have landed.
Bounds: an account that does not exist records nothing (a note refused there says no end
is awaited, and an end that comes there changes nothing); an operator's refusal of a lost
note (`ForcedLeg`) awaits no end either, since it must not grow a target that was set
aside for its size. In both cases an end the source sent before it learnt of the refusal
leaves one entry awaiting a note that never comes (a leak of one entry per such transfer,
never money: the entry notes nothing).
"""

from ledger.events import Event, PendingCreditAwaited, PendingCreditPaired
from ledger.internal import leg_id
from ledger.state import Account

__all__ = ["awaited_key", "end_unnoted", "note_awaited", "note_refused"]


def awaited_key(source: str, transfer_id: str, seq: int) -> str:
    """The key of pending transfer (`source`, `transfer_id`, `seq`) in `Account.awaited`:
    its note's leg id, which names the transfer forever."""
    return leg_id("note", source, transfer_id, seq)


def note_awaited(state: Account | None, source: str, transfer_id: str, seq: int) -> bool:
    """Whether the transfer's end came first here: its note is to be taken as ended."""
    return state is not None and state.awaited.get(awaited_key(source, transfer_id, seq)) == "note"


def end_unnoted(state: Account | None, source: str, transfer_id: str, seq: int) -> list[Event]:
    """The events of a transfer's end (release or settlement) that finds no credit noted:
    it pairs with its refused note, or it came first and awaits its note."""
    if state is None or not source:  # no account; or a leg of before credits were per source
        return []
    if state.awaited.get(awaited_key(source, transfer_id, seq)) == "end":
        return [PendingCreditPaired(transfer_id, source, seq)]
    return [PendingCreditAwaited(transfer_id, source, seq, "note")]


def note_refused(
    state: Account | None, source: str, transfer_id: str, seq: int
) -> tuple[list[Event], bool]:
    """The events of a refused note, and whether its end is awaited here (the source is
    then to send one: `VoidRefusedPending.end`)."""
    if state is None:
        return [], False
    if note_awaited(state, source, transfer_id, seq):
        return [PendingCreditPaired(transfer_id, source, seq)], False
    return [PendingCreditAwaited(transfer_id, source, seq, "end")], True
