"""Internal commands: the legs of a transfer that the service sends to itself (never a
client: the flow refuses them on the public commands topic). Each is sent to one account
under a deterministic id derived from the transfer (`leg_id`), so it happens once.

Every leg carries the transfer's `seq` (the source's event that started it) and the id of
its source where the receiver needs it: a leg only acts on the transfer it names, never on
an earlier or later one that reuses the same transfer id. (`seq` 0: a leg written before
legs named their transfer; it matches the entries written then, whose `seq` is 0 too.)"""

import hashlib
from typing import Final, Literal

import msgspec

__all__ = [
    "ConfirmCredit",
    "CreditTransfer",
    "ExpirePending",
    "ForcedLeg",
    "InternalCommand",
    "Leg",
    "NotePendingCredit",
    "RefundTransfer",
    "ReleasePendingCredit",
    "SettlePendingCredit",
    "VoidRefusedPending",
    "leg_id",
]

_MAX_LEG_ID: Final = 256  # the flow's id limit


class _Internal(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """Base of every internal command."""


class CreditTransfer(_Internal, frozen=True):
    """To the target: credit `amount` debited from `source` (in `currency`) by the source's
    event `seq`."""

    transfer_id: str
    source: str
    amount: int
    currency: str
    seq: int = 0


class RefundTransfer(_Internal, frozen=True):
    """To the source: the target refused the credit; give `amount` back."""

    transfer_id: str
    target: str
    amount: int
    code: str
    seq: int = 0


class ConfirmCredit(_Internal, frozen=True):
    """To the source: the target took transfer (`transfer_id`, `seq`); nothing comes back."""

    transfer_id: str
    target: str
    seq: int = 0


class NotePendingCredit(_Internal, frozen=True):
    """To the target: `amount` is reserved for it by `source`, pending."""

    transfer_id: str
    source: str
    amount: int
    currency: str
    seq: int = 0


class VoidRefusedPending(_Internal, frozen=True):
    """To the source: the target refused the pending credit; release the reservation.
    `end`: the target awaits the transfer's end (`ledger.pairs`), so a source that still
    holds the reservation sends it a release (False in legs sent before legs were paired,
    and where the target holds no account)."""

    transfer_id: str
    code: str
    seq: int = 0
    end: bool = False


class SettlePendingCredit(_Internal, frozen=True):
    """To the target: the pending transfer was posted with `amount` (<= the noted amount)."""

    transfer_id: str
    source: str
    amount: int
    seq: int = 0


class ReleasePendingCredit(_Internal, frozen=True):
    """To the target: the pending transfer from `source` was voided or expired."""

    transfer_id: str
    source: str = ""  # "" in legs sent before credits were kept per source
    seq: int = 0


class ExpirePending(_Internal, frozen=True):
    """To the source itself: the pending transfer's timeout passed on the partition's clock."""

    transfer_id: str
    seq: int = 0


Leg = (
    CreditTransfer
    | RefundTransfer
    | ConfirmCredit
    | NotePendingCredit
    | VoidRefusedPending
    | SettlePendingCredit
    | ReleasePendingCredit
    | ExpirePending
)


class ForcedLeg(_Internal, frozen=True):
    """An operator's settlement of `leg`, a leg that was set aside (lost: never done): sent
    again under the leg's own id, done as it was (`refund` False) or refused so that its
    money goes back to its source (`refund` True: a credit, a settlement or a pending note
    only). Recorded as a `TransferForced` event naming `operator` and `reason`."""

    leg: Leg
    refund: bool
    operator: str
    reason: str


InternalCommand = ForcedLeg | Leg

LegName = Literal[
    "credit", "refund", "confirm", "note", "void-refused", "settle", "release", "expire"
]


def leg_id(leg: LegName, source: str, transfer_id: str, seq: int) -> str:
    """The id of one leg of transfer (`source`, `transfer_id`, `seq`): `seq` is the source's
    event that started it, so the triple names one transfer forever (two sources may share
    an id; one source may reuse it after the idempotency window). The plain form
    `{leg}:{seq}:{len(source)}:{source}:{transfer_id}` reads left to right without
    ambiguity; past the id limit it is a hash of the triple. Deterministic, so a leg sent
    again is recognised."""
    plain = f"{leg}:{seq}:{len(source)}:{source}:{transfer_id}"
    if len(plain) <= _MAX_LEG_ID:
        return plain
    digest = hashlib.blake2b(digest_size=16)
    for part in (source, transfer_id, str(seq)):
        digest.update(len(part).to_bytes(4, "big") + part.encode())
    return f"{leg}:{digest.hexdigest()}"
