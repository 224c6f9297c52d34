"""What `decide` returns, whatever the command: one `Decision` (events to append, commands to
send to other accounts, or a rejection). The generic flow reads it structurally
(`topology.protocol.Decision`)."""

from typing import Self

import msgspec

from ledger.events import Event
from ledger.internal import InternalCommand
from ledger.rejections import Rejection, RejectionCode
from ledger.state import MAX_OPEN_TRANSFERS

__all__ = ["Context", "Decision", "Send"]


class Context(msgspec.Struct, frozen=True):
    """Where a command is decided: its id (a transfer's id), the account it is sent to, the
    partition's clock (epoch ms; the batch's time), the account's version before it (so
    the first event it appends has sequence `version + 1`), and the cap on the transfers an
    account holds open on each side (the aggregate's)."""

    command_id: str
    account_id: str
    now_ms: int
    version: int = 0
    max_open_transfers: int = MAX_OPEN_TRANSFERS


class Send(msgspec.Struct, frozen=True):
    """An internal command for account `target`, under the deterministic id `command_id`."""

    target: str
    command: InternalCommand
    command_id: str


class Decision(msgspec.Struct, frozen=True):
    """Events to append and commands to send, or a rejection. `rejection` None: accepted.
    `final`: the client's reply is sent now (False: deferred to the leg that ends the
    transfer). A leg that refuses the transfer carries its `rejection` (the transfer's answer
    when it is final elsewhere) while still sending the commands that undo it."""

    events: list[Event] = msgspec.field(default_factory=list)
    sends: list[Send] = msgspec.field(default_factory=list)
    final: bool = True
    rejection: Rejection | None = None

    @classmethod
    def reject(cls, code: RejectionCode, message: str) -> Self:
        """A refused command: no events, nothing sent."""
        return cls(rejection=Rejection(code, message))
