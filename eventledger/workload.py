"""A deterministic ledger workload (seeded): open N accounts, then M deposits/withdrawals.

Withdrawals are sized so that some exceed balance + overdraft (rejected for insufficient
funds); a small share of amounts are zero (rejected as not positive). The same seed gives
the same commands, so every system in a benchmark runs the same job.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ledger.commands import Deposit, OpenAccount, Withdraw

__all__ = ["Workload", "money_moved"]


@dataclass(frozen=True)
class Workload:
    accounts: int = 2_000
    commands: int = 20_000
    seed: int = 7
    currency: str = "EUR"
    zero_share: float = 0.01

    def account_id(self, i: int) -> str:
        return f"acc-{i:07d}"

    def openings(self) -> Iterator[tuple[str, Any]]:
        """One OpenAccount per account; every tenth gets an overdraft limit."""
        for i in range(self.accounts):
            limit = 5_000 if i % 10 == 0 else 0
            yield self.account_id(i), OpenAccount(self.currency, overdraft_limit=limit)

    def operations(self) -> Iterator[tuple[str, Any]]:
        """M deposits (55 %) and withdrawals (45 %), amounts in minor units."""
        rng = random.Random(self.seed)
        for _ in range(self.commands):
            account = self.account_id(rng.randrange(self.accounts))
            amount = 0 if rng.random() < self.zero_share else rng.randrange(1, 20_000)
            if rng.random() < 0.55:
                yield account, Deposit(amount)
            else:
                yield account, Withdraw(amount)

    def all(self) -> Iterator[tuple[str, Any]]:
        yield from self.openings()
        yield from self.operations()


def money_moved(command: Any) -> int:
    """The balance change an accepted command makes (deposits +, withdrawals −)."""
    if isinstance(command, Deposit):
        return command.amount
    if isinstance(command, Withdraw):
        return -command.amount
    return 0
