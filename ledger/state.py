"""Account state (internal layout) and its public view (published layout)."""

from typing import Final, Literal

import msgspec

from ledger.events import Awaiting

__all__ = [
    "ENDED_KEPT",
    "MAX_MINOR_UNITS",
    "MAX_OPEN_TRANSFERS",
    "Account",
    "AccountStatus",
    "AccountView",
    "Direction",
    "InFlight",
    "Pending",
    "view",
]

ENDED_KEPT: Final = 32
"""How many ended reservations an account names (`Account.ended`)."""

MAX_OPEN_TRANSFERS: Final = 500
"""How many transfers an account may hold open on each side (`Account.open_out`,
`Account.open_in`). With `ENDED_KEPT`, it bounds every collection of the state, so that the
largest account (ids at their longest) encodes far below the snapshot limit
(`tests/unit/test_state_size.py` computes it)."""

MAX_MINOR_UNITS: Final = 2**63 - 1
"""Largest amount, balance or overdraft limit: money must fit a signed 64-bit integer."""

AccountStatus = Literal["open", "closed"]
Direction = Literal["out", "in"]


class Pending(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An open transfer of an account: `out` (this is the source: `other` is the target) or
    `in` (this is the target: `other` is the source). `seq` is the source's event sequence
    that started it: (source, transfer id, seq) names one transfer forever, even when its id
    is reused after the idempotency window. `expires_ms` (a pending reservation's source
    side) is when the partition's clock voids it."""

    direction: Direction
    other: str
    amount: int
    expires_ms: int | None = None
    seq: int = 0
    since_ms: int = 0  # a transfer in flight (`Account.sending`): when it was debited


class Account(msgspec.Struct, frozen=True, array_like=True):
    """Internal state. Invariants:
    - -overdraft_limit <= balance - pending_debits (nothing is reserved that is not
      available);
    - `pending_debits` is the sum of the open reservations out (`pending`, by transfer id),
      `pending_credits` of those in (`incoming`, by source, then transfer id: two sources
      may use the same id);
    - `sending` holds every transfer debited here and not yet known to have landed (a
      refund may still come back): the account cannot close while it is not empty, and
      balance + pending_credits + Σ sending <= MAX_MINOR_UNITS (`headroom`), so no credit,
      settlement or refund can take a balance past int64;
    - `ended` names how the last `ENDED_KEPT` reservations ended (transfer id → "posted",
      "voided", "expired" or "refused"), oldest first, so a late post or void is told why
      its reservation is gone;
    - no command or leg opens a transfer beyond the cap (`MAX_OPEN_TRANSFERS` unless the
      aggregate is given another): `open_out` (`pending` and `sending`) and `open_in`
      (`incoming`) each stay within it, so the state's size is bounded;
    - `awaited` names the pending transfers in (by their note's leg id) of which one leg
      came without its pair (`ledger.pairs`): each entry lives until the pair's other leg
      comes, one trip of a leg, so it holds only transfers whose legs are in flight.
    The account's version (events applied) is not here: the flow counts it, once, in its
    slot. Encoded as an array: field order is layout, so a change of it is a state schema
    version bump (5 added `awaited`; 4 `incoming` and `sending`; 3 the pending transfers)."""

    status: AccountStatus
    currency: str
    balance: int
    overdraft_limit: int
    pending_debits: int = 0
    pending_credits: int = 0
    pending: dict[str, Pending] = msgspec.field(default_factory=dict)
    incoming: dict[str, dict[str, Pending]] = msgspec.field(default_factory=dict)
    sending: dict[str, Pending] = msgspec.field(default_factory=dict)
    ended: dict[str, str] = msgspec.field(default_factory=dict)
    awaited: dict[str, Awaiting] = msgspec.field(default_factory=dict)

    @property
    def available(self) -> int:
        """What may still be withdrawn, transferred or reserved."""
        return self.balance + self.overdraft_limit - self.pending_debits

    @property
    def open_out(self) -> int:
        """Transfers open from here: reserved (`pending`), or sent and not landed
        (`sending`). Posting a reservation moves it from one to the other."""
        return len(self.pending) + len(self.sending)

    @property
    def open_in(self) -> int:
        """Pending credits noted here (`incoming`), from every source."""
        return sum(len(credits) for credits in self.incoming.values())

    @property
    def headroom(self) -> int:
        """What may still be credited: the balance can still receive every pending credit
        and every refund of what is in flight from here without passing int64."""
        return (
            MAX_MINOR_UNITS
            - self.balance
            - self.pending_credits
            - sum(p.amount for p in self.sending.values())
        )


class InFlight(msgspec.Struct, frozen=True):
    """A transfer debited from the account and not yet known to have landed."""

    transfer_id: str
    to: str
    amount: int
    since_ms: int


class AccountView(msgspec.Struct, frozen=True):
    """Public view published to the state topic. Its layout is a contract with readers and
    changes independently of `Account`; the account id is the record key, not a field."""

    status: AccountStatus
    currency: str
    balance: int
    overdraft_limit: int
    version: int
    pending_debits: int = 0
    pending_credits: int = 0
    available: int = 0
    in_flight: list[InFlight] = msgspec.field(default_factory=list)


def view(state: Account, version: int) -> AccountView:
    """The public view of an existing account at `version` (the events applied to it)."""
    return AccountView(
        status=state.status,
        currency=state.currency,
        balance=state.balance,
        overdraft_limit=state.overdraft_limit,
        version=version,
        pending_debits=state.pending_debits,
        pending_credits=state.pending_credits,
        available=state.available,
        in_flight=[InFlight(t, p.other, p.amount, p.since_ms) for t, p in state.sending.items()],
    )
