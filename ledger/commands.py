"""Commands: requests to change an account. Tagged by class name on the wire."""

import msgspec

__all__ = ["CloseAccount", "Command", "Deposit", "OpenAccount", "Withdraw"]


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
    """Close an account whose balance is exactly zero."""


Command = OpenAccount | Deposit | Withdraw | CloseAccount
