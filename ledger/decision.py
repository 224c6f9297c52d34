"""What a decision may be besides events or a rejection: events plus commands to send to
other accounts (the legs of a transfer), as the generic flow reads it structurally."""

from typing import Any

import msgspec

from ledger.events import Event
from ledger.rejections import Rejection

__all__ = ["Context", "Decision", "Send"]


class Context(msgspec.Struct, frozen=True):
    """Where a command is decided: its id (a transfer's id), the account it is sent to, the
    partition's clock (epoch ms; the batch's time) and the account's version before it (so
    the first event it appends has sequence `version + 1`)."""

    command_id: str
    account_id: str
    now_ms: int
    version: int = 0


class Send(msgspec.Struct, frozen=True):
    """An internal command for account `target`, under the deterministic id `command_id`."""

    target: str
    command: Any
    command_id: str


class Decision(msgspec.Struct, frozen=True):
    """Events to append and commands to send. `final`: the client's reply is sent now
    (False: deferred to the leg that ends the transfer). `refusal`: this leg refuses the
    transfer (its reply, when final elsewhere, is this rejection) while still sending the
    commands that undo it."""

    events: list[Event]
    sends: list[Send] = msgspec.field(default_factory=list)
    final: bool = True
    refusal: Rejection | None = None
