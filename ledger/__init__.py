"""The ledger domain: accounts as pure decide / evolve functions over msgspec Structs.

No I/O and no imports beyond msgspec and the standard library.
"""

from ledger.aggregate import LEDGER, AccountAggregate
from ledger.commands import CloseAccount, Command, Deposit, OpenAccount, Withdraw
from ledger.decide import decide
from ledger.events import AccountClosed, AccountOpened, Deposited, Event, Withdrawn
from ledger.evolve import evolve
from ledger.rejections import Rejection, RejectionCode
from ledger.state import MAX_MINOR_UNITS, Account, AccountStatus, AccountView, view

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
    "Deposit",
    "Deposited",
    "Event",
    "OpenAccount",
    "Rejection",
    "RejectionCode",
    "Withdraw",
    "Withdrawn",
    "decide",
    "evolve",
    "view",
]
