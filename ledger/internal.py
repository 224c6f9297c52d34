"""Internal commands: the legs of a transfer that the service sends to itself (never a
client: the flow refuses them on the public commands topic). Each is sent to one account
under a deterministic id derived from the transfer id (`leg_id`), so it happens once."""

import hashlib
from typing import Final, Literal

import msgspec

__all__ = [
    "CreditTransfer",
    "ExpirePending",
    "InternalCommand",
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
    """To the target: credit `amount` debited from `source` (in `currency`)."""

    transfer_id: str
    source: str
    amount: int
    currency: str


class RefundTransfer(_Internal, frozen=True):
    """To the source: the target refused the credit; give `amount` back."""

    transfer_id: str
    target: str
    amount: int
    code: str


class NotePendingCredit(_Internal, frozen=True):
    """To the target: `amount` is reserved for it by `source`, pending."""

    transfer_id: str
    source: str
    amount: int
    currency: str


class VoidRefusedPending(_Internal, frozen=True):
    """To the source: the target refused the pending credit; release the reservation."""

    transfer_id: str
    code: str


class SettlePendingCredit(_Internal, frozen=True):
    """To the target: the pending transfer was posted with `amount` (<= the noted amount)."""

    transfer_id: str
    source: str
    amount: int


class ReleasePendingCredit(_Internal, frozen=True):
    """To the target: the pending transfer was voided or expired."""

    transfer_id: str


class ExpirePending(_Internal, frozen=True):
    """To the source itself: the pending transfer's timeout passed on the partition's clock."""

    transfer_id: str


InternalCommand = (
    CreditTransfer
    | RefundTransfer
    | NotePendingCredit
    | VoidRefusedPending
    | SettlePendingCredit
    | ReleasePendingCredit
    | ExpirePending
)

Leg = Literal["credit", "refund", "note", "void-refused", "settle", "release", "expire"]


def leg_id(transfer_id: str, leg: Leg) -> str:
    """The id of a transfer's leg: `{transfer_id}/{leg}`, or a hash of the transfer id when
    that would be too long. Deterministic, so a leg sent again is recognised."""
    plain = f"{transfer_id}/{leg}"
    if len(plain) <= _MAX_LEG_ID:
        return plain
    return f"{hashlib.blake2b(transfer_id.encode(), digest_size=16).hexdigest()}/{leg}"
