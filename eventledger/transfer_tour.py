"""The demo's transfers: random ones among the demo's accounts (same and cross partition,
some refused for funds), then one of each kind by name: to an unknown account, to a closed
one, pending then posted (in part), pending then voided, and pending left to expire.

Returns the outcomes by kind; the demo then waits until nothing is in flight and checks the
money (``ledger.money``)."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import Future

from eventledger.bank import BankClient
from ledger.commands import CloseAccount, OpenAccount, Transfer
from topology.envelopes import Reply

__all__ = ["tour"]

_EXPIRY_MS = 300


def _outcome(reply: Reply) -> str:
    return "accepted" if reply.accepted else f"rejected: {reply.code}"


def tour(
    client: BankClient, accounts: list[str], *, count: int, seed: int, currency: str = "EUR"
) -> Counter[str]:
    """Send ``count`` random transfers among ``accounts`` (all in ``currency``) and the named
    cases; the outcome of each, by kind (same / cross partition, and the named ones)."""
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    sent: list[tuple[str, Future[Reply]]] = []
    for _ in range(count):
        source, target = rng.sample(accounts, 2)
        same = client.partition_of(source) == client.partition_of(target)
        kind = "same partition" if same else "cross partition"
        sent.append((kind, client.send(source, Transfer(target, rng.randrange(1, 5_000)))))
    for kind, future in sent:
        outcomes[f"{kind}: {_outcome(future.result(timeout=120))}"] += 1

    source, target = accounts[0], accounts[1]
    missing = f"missing-{seed}"
    outcomes[f"to an unknown account: {_outcome(client.transfer(source, missing, 1))}"] += 1
    closed = f"closed-{seed}"
    assert client.execute(closed, OpenAccount(currency)).accepted
    assert client.execute(closed, CloseAccount()).accepted
    outcomes[f"to a closed account: {_outcome(client.transfer(source, closed, 1))}"] += 1
    for name, finish in (("posted", "post"), ("voided", "void"), ("expired", None)):
        timeout = _EXPIRY_MS if finish is None else None
        held = client.transfer(source, target, 1, pending=True, pending_timeout_ms=timeout)
        outcomes[f"pending: {_outcome(held)}"] += 1
        if not held.accepted:
            continue
        if finish == "post":
            reply = client.post_pending(held.command_id, source=source, amount=1)
        elif finish == "void":
            reply = client.void_pending(held.command_id, source=source)
        else:
            time.sleep(2 * _EXPIRY_MS / 1000)  # then the source's clock has passed it
            reply = client.post_pending(held.command_id, source=source)
        outcomes[f"pending then {name}: {_outcome(reply)}"] += 1
    return outcomes
