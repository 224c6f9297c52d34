"""What the clients did: every command sent and every reply received, as plain records.

A record is keyed by ``(account, command id)``: command ids are scoped to their account, and
the workload deliberately gives the same id to commands of different accounts. Every reply a
client received is kept, including a reply that answers another account's command (a crossed
reply): the first reply is what the caller believed, so the checker judges by it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Answer", "History", "Kind", "Op"]


class Kind(StrEnum):
    """What a command does to the money: opens hold none, deposits add, withdrawals take;
    transfers (and posts and voids of pending ones) move it between accounts: none in all."""

    OPEN = "open"
    DEPOSIT = "deposit"
    WITHDRAW = "withdraw"
    TRANSFER = "transfer"
    POST = "post"
    VOID = "void"


@dataclass(frozen=True, slots=True)
class Answer:
    """One reply as a client got it (``at``: seconds on the run's monotonic clock)."""

    command_id: str
    aggregate_id: str
    accepted: bool
    code: str | None
    at: float


@dataclass(slots=True)
class Op:
    """One logical command: sent once, retried with the same id until answered or out of
    budget. ``amount`` is the (non-negative) amount of a deposit or withdrawal, 0 for opens;
    ``probe`` marks the deliberate reuse of an id with another command on the same account."""

    op_id: int
    client: int
    account: str
    command_id: str
    kind: Kind
    amount: int
    started: float
    deadline: float
    probe: bool = False
    pending: bool = False  # a pending (two-phase) transfer
    attempts: int = 0
    errors: int = 0
    answers: list[Answer] = field(default_factory=list)
    ended: float | None = None

    @property
    def move(self) -> int:
        """The balance change this command makes if it is accepted."""
        if self.kind is Kind.DEPOSIT:
            return self.amount
        if self.kind is Kind.WITHDRAW:
            return -self.amount
        return 0

    @property
    def answer(self) -> Answer | None:
        """The first reply: what the caller believed."""
        return self.answers[0] if self.answers else None


class History:
    """A thread-safe log of ops. Clients ``begin`` an op, then ``attempt``/``answer``/``end``
    it; the op object is owned by the client thread that began it until it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._ops: list[Op] = []

    def begin(
        self,
        *,
        client: int,
        account: str,
        command_id: str,
        kind: Kind,
        amount: int,
        started: float,
        budget: float,
        probe: bool = False,
        pending: bool = False,
    ) -> Op:
        op = Op(
            op_id=next(self._ids),
            client=client,
            account=account,
            command_id=command_id,
            kind=kind,
            amount=amount,
            started=started,
            deadline=started + budget,
            probe=probe,
            pending=pending,
        )
        with self._lock:
            self._ops.append(op)
        return op

    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)

    def counts(self) -> tuple[int, int]:
        """(ops begun, ops answered) so far, for progress."""
        with self._lock:
            return len(self._ops), sum(1 for o in self._ops if o.answers)
