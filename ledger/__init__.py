"""The ledger domain: accounts as pure decide / evolve functions over msgspec Structs.

No I/O and no imports beyond msgspec and the standard library.
"""

from ledger.aggregate import LEDGER, AccountAggregate
from ledger.commands import (
    CloseAccount,
    Command,
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from ledger.decide import decide, due
from ledger.decision import Context, Decision, Send
from ledger.events import (
    AccountClosed,
    AccountOpened,
    Deposited,
    Event,
    PendingCreditAwaited,
    PendingCreditNoted,
    PendingCreditPaired,
    PendingCreditReleased,
    PendingCreditSettled,
    PendingPosted,
    PendingReserved,
    PendingVoided,
    TransferCredited,
    TransferDebited,
    TransferReversed,
    Withdrawn,
)
from ledger.evolve import evolve
from ledger.internal import InternalCommand, leg_id
from ledger.money import Money, moves
from ledger.rejections import Rejection, RejectionCode
from ledger.state import (
    MAX_MINOR_UNITS,
    Account,
    AccountStatus,
    AccountView,
    Pending,
    view,
)

__all__ = [
    "LEDGER",
    "MAX_MINOR_UNITS",
    "Account",
    "AccountAggregate",
    "AccountClosed",
    "AccountOpened",
    "AccountStatus",
    "AccountView",
    "CloseAccount",
    "Command",
    "Context",
    "Decision",
    "Deposit",
    "Deposited",
    "Event",
    "InternalCommand",
    "Money",
    "OpenAccount",
    "Pending",
    "PendingCreditAwaited",
    "PendingCreditNoted",
    "PendingCreditPaired",
    "PendingCreditReleased",
    "PendingCreditSettled",
    "PendingPosted",
    "PendingReserved",
    "PendingVoided",
    "PostPending",
    "Rejection",
    "RejectionCode",
    "Send",
    "Transfer",
    "TransferCredited",
    "TransferDebited",
    "TransferReversed",
    "VoidPending",
    "Withdraw",
    "Withdrawn",
    "decide",
    "due",
    "evolve",
    "leg_id",
    "moves",
    "view",
]
