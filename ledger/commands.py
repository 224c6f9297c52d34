"""Commands a client sends: requests to change an account. Tagged by class name on the wire.

A transfer's commands are sent to its source account (commands are routed by account): the
transfer id is the command id of its `Transfer`, and `PostPending` / `VoidPending` name it.
"""

import msgspec

__all__ = [
    "CloseAccount",
    "Command",
    "Deposit",
    "OpenAccount",
    "PostPending",
    "Transfer",
    "VoidPending",
    "Withdraw",
]


class _Command(msgspec.Struct, frozen=True, tag=True, forbid_unknown_fields=True):
    """Base of every command; unknown fields are refused rather than silently dropped."""


class OpenAccount(_Command, frozen=True):
    """Open an account in `currency` (ISO 4217 style, three uppercase letters)."""

    currency: str
    overdraft_limit: int = 0


class Deposit(_Command, frozen=True):
    """Credit `amount` minor units."""

    amount: int


class Withdraw(_Command, frozen=True):
    """Debit `amount` minor units, allowed down to minus the overdraft limit."""

    amount: int


class CloseAccount(_Command, frozen=True):
    """Close an account whose balance is exactly zero and that has no pending transfer."""


class Transfer(_Command, frozen=True):
    """Move `amount` minor units from this account to account `to` (same currency). With
    `pending`, only reserve it (two-phase: posted or voided later, or voided when
    `timeout_ms` passes on the source partition's clock)."""

    to: str
    amount: int
    pending: bool = False
    timeout_ms: int | None = None


class PostPending(_Command, frozen=True):
    """Complete pending transfer `transfer_id` of this (source) account with `amount` (None:
    the amount reserved; less releases the rest)."""

    transfer_id: str
    amount: int | None = None


class VoidPending(_Command, frozen=True):
    """Release pending transfer `transfer_id` of this (source) account."""

    transfer_id: str


Command = OpenAccount | Deposit | Withdraw | CloseAccount | Transfer | PostPending | VoidPending
