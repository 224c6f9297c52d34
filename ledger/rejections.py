"""Why a command was refused."""

from enum import StrEnum

import msgspec

__all__ = ["Rejection", "RejectionCode"]


class RejectionCode(StrEnum):
    """Stable, machine-readable reasons; clients branch on these, never on messages."""

    UNKNOWN_ACCOUNT = "unknown_account"
    ALREADY_OPEN = "already_open"
    ACCOUNT_CLOSED = "account_closed"
    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    NONZERO_BALANCE = "nonzero_balance"
    INVALID_COMMAND = "invalid_command"
    LIMIT_EXCEEDED = "limit_exceeded"
    CURRENCY_MISMATCH = "currency_mismatch"
    SAME_ACCOUNT = "same_account"
    UNKNOWN_PENDING = "unknown_pending"
    PENDING_EXPIRED = "pending_expired"
    PENDING_TRANSFERS = "pending_transfers"
    TRANSFERS_IN_FLIGHT = "transfers_in_flight"  # a close while sent money may come back
    TRANSFER_OPEN = "transfer_open"  # a transfer id still open on this account
    REFUSED_BY_OPERATOR = "refused_by_operator"  # a lost leg an operator forced back
    TOO_MANY_OPEN_TRANSFERS = "too_many_open_transfers"  # the source's or target's cap


class Rejection(msgspec.Struct, frozen=True):
    """A refused command: why, as a `RejectionCode`, and a `message` for humans."""

    code: RejectionCode
    message: str
