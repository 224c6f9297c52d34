"""The bank workload: a few very busy accounts and many quiet ones, many concurrent clients.

Jepsen's bank test: a share of the ops are transfers between the accounts (plain, and
pending ones that the client then posts, voids or leaves to expire), so the total must stay
what the deposits and withdrawals made it.

Every client thread sends deposits and withdrawals with explicit command ids through one of
several ``LedgerClient``s (on different reply lanes), each with a SHORT per-attempt timeout,
and retries the SAME id until a reply comes or the op's retry budget runs out, as a careful
caller would. Account ids are shared by all clients, and a share of the command ids is
deliberately given to two concurrent commands of two clients on DIFFERENT accounts: their
replies must not cross. An id is never reused on the same account, except by the separate
``probe_reuse`` check. Every op and every reply goes into the ``History``.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.channel import OutcomeUnknownError, now_ms
from actors.client import LedgerClient
from eventledger.torture.history import Answer, History, Kind, Op
from ledger.commands import (
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from topology.settings import Settings

__all__ = ["Bank", "RetryPolicy", "SharedIds", "Workload"]

log = logging.getLogger(__name__)

_EXPIRY_MS = 500


@dataclass(frozen=True)
class Bank:
    """The accounts: ``busy`` of them take ``busy_share`` of the traffic."""

    accounts: int = 40
    busy: int = 2
    busy_share: float = 0.7
    opening_deposit: int = 10_000
    overdraft_limit: int = 2_000
    prefix: str = "acct"

    def account_ids(self) -> list[str]:
        return [f"{self.prefix}-{i:04d}" for i in range(self.accounts)]

    def pick(self, rng: random.Random) -> str:
        if rng.random() < self.busy_share:
            return f"{self.prefix}-{rng.randrange(self.busy):04d}"
        return f"{self.prefix}-{rng.randrange(self.busy, self.accounts):04d}"


@dataclass(frozen=True)
class RetryPolicy:
    """Per attempt: wait ``attempt_timeout`` for a reply; per op: give up after ``budget``."""

    attempt_timeout: float = 1.0
    budget: float = 90.0
    backoff: float = 0.05


@dataclass(frozen=True)
class _Ticket:
    command_id: str
    client: int
    account: str


class SharedIds:
    """Hands the same command id to two concurrent commands of two clients on two different
    accounts (never twice to one account), so that crossed replies have a chance to show."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._n = itertools.count()
        self._lock = threading.Lock()
        self._open: _Ticket | None = None
        self.paired = 0

    def take(self, client: int, account: str) -> str:
        with self._lock:
            t = self._open
            if t is not None and t.client != client and t.account != account:
                self._open = None
                self.paired += 1
                return t.command_id
            command_id = f"{self._prefix}-shared-{next(self._n)}"
            self._open = _Ticket(command_id, client, account)
            return command_id


class Workload:
    """Clients, their threads, and the retry layer. ``clock`` is the run's clock (seconds)."""

    def __init__(
        self,
        settings: Settings,
        history: History,
        *,
        clients: int,
        bank: Bank,
        policy: RetryPolicy,
        seed: int,
        clock: Callable[[], float],
        shared_share: float = 0.1,
        transfer_share: float = 0.3,
        per_connection: int = 8,
    ) -> None:
        self.settings = settings
        self.history = history
        self.bank = bank
        self.policy = policy
        self.clock = clock
        self.seed = seed
        self.shared_share = shared_share
        self.transfer_share = transfer_share
        self.errors: Counter[str] = Counter()
        self._errors_lock = threading.Lock()
        self.run_id = f"r{seed}"
        self.shared = SharedIds(self.run_id)
        connections = max(2, -(-clients // per_connection))
        self.connections = [
            LedgerClient(settings, reply_lane=i % settings.reply_lanes, timeout=30.0)
            for i in range(connections)
        ]
        self.clients = clients
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the retry layer ------------------------------------------------------------------

    def run_op(self, client: int, account: str, command_id: str, command: Any, op: Op) -> None:
        """Send ``command`` with ``command_id`` until a reply or the budget's end, every
        attempt with the op's first-attempt time, as a caller retrying across calls must."""
        connection = self.connections[client % len(self.connections)]
        first_attempt_ms = now_ms() - int((self.clock() - op.started) * 1000)
        while True:
            left = op.deadline - self.clock()
            if left <= 0:
                break
            op.attempts += 1
            try:
                reply = connection.execute(
                    account,
                    command,
                    command_id=command_id,
                    first_attempt_ms=first_attempt_ms,
                    timeout=max(0.05, min(self.policy.attempt_timeout, left)),
                )
            except OutcomeUnknownError as e:
                op.errors += 1
                with self._errors_lock:
                    self.errors[type(e).__name__] += 1
                time.sleep(min(self.policy.backoff * min(op.attempts, 10), 0.5))
                continue
            at = self.clock()
            op.answers.append(
                Answer(reply.command_id, reply.aggregate_id, reply.accepted, reply.code, at)
            )
            break
        op.ended = self.clock()

    def _op(
        self, client: int, account: str, command_id: str, command: Any, *, probe: bool = False
    ) -> Op:
        kind, amount = _kind(command)
        pending = isinstance(command, Transfer) and command.pending
        op = self.history.begin(
            client=client,
            account=account,
            command_id=command_id,
            kind=kind,
            amount=amount,
            started=self.clock(),
            budget=self.policy.budget,
            probe=probe,
            pending=pending,
        )
        self.run_op(client, account, command_id, command, op)
        return op

    # -- phases ---------------------------------------------------------------------------

    def open_accounts(self) -> None:
        """Open every account (with its overdraft limit) and make its opening deposit, from
        as many threads as there are connections."""
        ids = self.bank.account_ids()

        def opener(client: int) -> None:
            for account in ids[client :: len(self.connections)]:
                self._op(
                    client,
                    account,
                    f"{self.run_id}-open-{account}",
                    OpenAccount("EUR", overdraft_limit=self.bank.overdraft_limit),
                )
                self._op(
                    client,
                    account,
                    f"{self.run_id}-fund-{account}",
                    Deposit(self.bank.opening_deposit),
                )

        threads = [
            threading.Thread(target=opener, args=(c,), name=f"opener-{c}")
            for c in range(len(self.connections))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def probe_reuse(self) -> None:
        """The counted id-reuse check: one id, two different deposits, one account. The
        second must be refused (``id_reused``) and change nothing."""
        account = f"{self.bank.prefix}-probe"
        self._op(0, account, f"{self.run_id}-probe-open", OpenAccount("EUR"))
        command_id = f"{self.run_id}-probe-reused"
        self._op(0, account, command_id, Deposit(5), probe=True)
        self._op(1, account, command_id, Deposit(999), probe=True)

    def start(self) -> None:
        """Start the client threads; they run until ``stop``."""
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._client, args=(c,), name=f"client-{c}", daemon=True)
            for c in range(self.clients)
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """No new ops; ops in flight go on until answered or out of budget."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the client threads; False if one is still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def close(self) -> None:
        for c in self.connections:
            try:
                c.close()
            except Exception as e:  # a broker gone for good: nothing more to flush
                log.warning("closing a client: %s", e)

    def _transfer(self, client: int, source: str, transfer_id: str, rng: random.Random) -> None:
        """A transfer to another account; a quarter are pending, then posted (maybe in part),
        voided, or left to expire on the source's clock."""
        target = self.bank.pick(rng)
        while target == source:
            target = self.bank.pick(rng)
        amount = rng.randrange(1, 800)
        if rng.random() >= 0.25:
            self._op(client, source, transfer_id, Transfer(target, amount))
            return
        timeout = rng.choice((None, _EXPIRY_MS))
        held = self._op(client, source, transfer_id, Transfer(target, amount, True, timeout))
        answer = held.answer
        if answer is None or not answer.accepted or timeout is not None:
            return
        if rng.random() < 0.5:
            posted = PostPending(transfer_id, rng.choice((None, rng.randrange(1, amount + 1))))
            self._op(client, source, f"{transfer_id}-post", posted)
        else:
            self._op(client, source, f"{transfer_id}-void", VoidPending(transfer_id))

    def _client(self, client: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + client)
        n = 0
        while not self._stop.is_set():
            account = self.bank.pick(rng)
            if rng.random() < self.transfer_share:
                transfer_id = f"{self.run_id}-c{client}-{n}"
                n += 1
                try:
                    self._transfer(client, account, transfer_id, rng)
                except Exception:  # a bug of ours, or a closed client: say so
                    log.exception("client %d stopped", client)
                    return
                continue
            command: Any
            if rng.random() < 0.55:
                command = Deposit(rng.randrange(1, 1_000))
            else:
                command = Withdraw(rng.randrange(1, 1_500))
            if rng.random() < self.shared_share:
                command_id = self.shared.take(client, account)
            else:
                command_id = f"{self.run_id}-c{client}-{n}"
            n += 1
            try:
                self._op(client, account, command_id, command)
            except Exception:  # a bug of ours, or a closed client: say so, keep the others
                log.exception("client %d stopped", client)
                return


def _kind(command: Any) -> tuple[Kind, int]:
    match command:
        case Deposit(amount=amount):
            return Kind.DEPOSIT, amount
        case Withdraw(amount=amount):
            return Kind.WITHDRAW, amount
        case Transfer(amount=amount):
            return Kind.TRANSFER, amount
        case PostPending(amount=amount):
            return Kind.POST, amount or 0
        case VoidPending():
            return Kind.VOID, 0
    return Kind.OPEN, 0
