"""An open-loop load of deposits of 1 through one ``LedgerClient``, and the check that each
touched account holds its seeded balance plus its deposits. Shared by the bench phases that
break or move partitions under load (failover, repartition)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from actors.client import LedgerClient
from actors.reads import Reads
from bench.check import CheckFailedError
from bench.restore import account_id, balance_of
from ledger.commands import Deposit
from ledger.state import AccountView
from topology.envelopes import Reply
from topology.settings import Settings

__all__ = ["DepositLoad", "Sent", "check_balances"]


@dataclass
class Sent:
    """One deposit: its account's index, when it was due (monotonic), its reply's future and
    when the reply came (monotonic; None: not yet)."""

    account: int
    at: float
    future: Future[Reply]
    replied: float | None = None

    def replied_now(self, _future: Future[Reply]) -> None:
        self.replied = time.monotonic()


class DepositLoad:
    """Deposits of 1, open loop at ``rate`` per second over ``keys`` accounts, from a thread
    named ``name``, until ``stop``."""

    def __init__(self, client: LedgerClient, keys: int, rate: float, name: str) -> None:
        self.client, self.keys, self.rate = client, keys, rate
        self.sent: list[Sent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def reply_times(self) -> list[float]:
        return [s.replied for s in list(self.sent) if s.replied is not None]

    def _run(self) -> None:
        start, n = time.monotonic(), 0
        while not self._stop.is_set():
            at = start + n / self.rate
            if at > time.monotonic():
                self._stop.wait(at - time.monotonic())
                continue
            i = (n * 7_919) % self.keys  # spread over the accounts, each touched rarely
            sent = Sent(i, at, self.client.send(account_id(i), Deposit(1)))
            sent.future.add_done_callback(sent.replied_now)
            self.sent.append(sent)
            n += 1


def check_balances(settings: Settings, sent: list[Sent], replies: list[Reply]) -> int:
    """Every deposit accepted; each touched account holds its seeded balance plus its
    deposits, read at least at the version of its last reply. Returns the accounts
    checked."""
    refused = [r for r in replies if not r.accepted]
    if refused:
        raise CheckFailedError(f"{len(refused)} deposits refused, e.g. {refused[0]}")
    deposits: dict[int, int] = {}
    versions: dict[int, int] = {}
    for s, r in zip(sent, replies, strict=True):
        deposits[s.account] = deposits.get(s.account, 0) + 1
        versions[s.account] = max(versions.get(s.account, 0), r.version)
    with Reads(settings, AccountView) as reads:
        for i, n in deposits.items():
            view = reads.read(account_id(i), min_version=versions[i]).view
            want = balance_of(i) + n
            if not isinstance(view, AccountView) or view.balance != want:
                got = view.balance if isinstance(view, AccountView) else None
                raise CheckFailedError(f"{account_id(i)}: balance {got}, expected {want}")
    return len(deposits)
