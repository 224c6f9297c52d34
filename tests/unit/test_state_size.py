"""The largest legal account encodes far below the snapshot limit: every collection of the
state at its cap (`MAX_OPEN_TRANSFERS` open on each side, `ENDED_KEPT` ended reservations),
every id at its longest, every number at its widest. The caps are what bound it; the flow's
size guard (`topology.step.guard`) is what stops anything larger from being written."""

import random
import string

from ledger import (
    MAX_MINOR_UNITS,
    Account,
    Context,
    Transfer,
    decide,
)
from ledger.internal import NotePendingCredit
from ledger.rejections import RejectionCode
from ledger.state import ENDED_KEPT, MAX_OPEN_TRANSFERS, Pending
from topology.envelopes import Slot
from topology.ids import MAX_CLIENT_ID_CHARS
from topology.limits import MAX_ID_CHARS, MAX_SNAPSHOT_BYTES

from .support import LEDGER_CODEC

_ALPHABET = string.ascii_letters + string.digits + "._:-"
_WIDE = 2**62  # any number from 2**32 up takes msgpack's widest form (9 bytes)


def largest(id_chars: int) -> tuple[str, Account]:
    """An account id and the largest state it may hold with ids of `id_chars` characters:
    half its open transfers out reserved and half in flight, every pending credit in from a
    source of its own (each source id written twice: key and entry), `ENDED_KEPT` ended."""
    rng = random.Random(id_chars)

    def new_id() -> str:  # random: nothing for lz4 to find
        return "".join(rng.choice(_ALPHABET) for _ in range(id_chars))

    half = MAX_OPEN_TRANSFERS // 2
    amount = MAX_MINOR_UNITS // (4 * MAX_OPEN_TRANSFERS)  # the sums stay within int64
    pending = {new_id(): Pending("out", new_id(), amount, _WIDE, _WIDE) for _ in range(half)}
    sending = {
        new_id(): Pending("out", new_id(), amount, None, _WIDE, _WIDE)
        for _ in range(MAX_OPEN_TRANSFERS - half)
    }
    incoming = {}
    for _ in range(MAX_OPEN_TRANSFERS):
        source = new_id()
        incoming[source] = {new_id(): Pending("in", source, amount, None, _WIDE)}
    ended = {new_id(): "refused" for _ in range(ENDED_KEPT)}
    debits, credits = half * amount, MAX_OPEN_TRANSFERS * amount
    state = Account("open", "EUR", _WIDE, _WIDE, debits, credits, pending, incoming, sending, ended)
    assert state.available > 0 and state.headroom > 0, "a legal state: its invariants hold"
    return new_id(), state


def encoded_sizes(aggregate_id: str, state: Account) -> tuple[int, int]:
    """Bytes of the snapshot record value and the view record value of `state`."""
    slot = Slot(state, MAX_MINOR_UNITS)
    _, snapshot = LEDGER_CODEC.snapshots.record(aggregate_id, slot, MAX_MINOR_UNITS)
    view = LEDGER_CODEC.views.encode(state, MAX_MINOR_UNITS)
    return len(snapshot), len(view)


def test_the_largest_state_holds_every_collection_at_its_cap_and_no_more() -> None:
    account, state = largest(MAX_CLIENT_ID_CHARS)
    assert state.open_out == state.open_in == MAX_OPEN_TRANSFERS
    assert len(state.ended) == ENDED_KEPT
    more_out = decide(state, Transfer("x", 1), Context("t", account, 0, 1))
    note = NotePendingCredit("t", "x", 1, "EUR", 1)
    more_in = decide(state, note, Context("n", account, 0, 1))
    for decision in (more_out, more_in):
        assert decision.rejection is not None
        assert decision.rejection.code == RejectionCode.TOO_MANY_OPEN_TRANSFERS


def test_with_client_ids_it_encodes_in_under_half_the_snapshot_limit() -> None:
    snapshot, view = encoded_sizes(*largest(MAX_CLIENT_ID_CHARS))
    assert snapshot < MAX_SNAPSHOT_BYTES // 2, f"{snapshot:,} bytes"
    assert view < MAX_SNAPSHOT_BYTES // 2, f"{view:,} bytes"


def test_with_the_flows_longest_ascii_ids_it_still_fits() -> None:
    snapshot, view = encoded_sizes(*largest(MAX_ID_CHARS))
    assert max(snapshot, view) < MAX_SNAPSHOT_BYTES, f"{snapshot:,} / {view:,} bytes"
