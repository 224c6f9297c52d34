"""The ledger domain: accounts as pure decide / evolve functions over msgspec Structs.

No I/O and no imports beyond msgspec and the standard library.
"""

from eventledger.ledger.aggregate import LEDGER, AccountAggregate
from eventledger.ledger.commands import (
    CloseAccount,
    Command,
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from eventledger.ledger.decide import decide, due
from eventledger.ledger.decision import Context, Decision, Send
from eventledger.ledger.events import (
    AccountClosed,
    AccountOpened,
    Deposited,
    Event,
    PendingCreditNoted,
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
from eventledger.ledger.evolve import evolve
from eventledger.ledger.internal import InternalCommand, leg_id
from eventledger.ledger.money import Money, moves
from eventledger.ledger.rejections import Rejection, RejectionCode
from eventledger.ledger.state import (
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
    "PendingCreditNoted",
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
