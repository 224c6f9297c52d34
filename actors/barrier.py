"""The order barrier: a client keeps the order of its own pipelined commands to one account
when the account's owner changes (issue 23, design-repartition.md, "Clients follow").

A command the client sent to the account's old owner p is forwarded by p to the new owner q
through ``internal[q]``, and q reads ``internal[q]`` and ``commands[q]`` with no order
between them: a later command the client sends straight to q once it knows the new table
could be executed first (a withdrawal before the deposit it needs). The barrier holds that
later command until the earlier ones are answered.

Invariant, per channel and account a: a command for a is produced to partition q only when
no other command for a is in flight to a partition other than q, and no command for a is
held before it. In flight: produced, neither answered nor given up (``done``), and first
produced less than ``timeout`` seconds ago. Held commands go out in the order they came,
each to a's owner at its release. Hence:

- while a's owner does not change, every command for a goes to one partition and none is
  held: the cost is one dict entry per command in flight;
- a command is held only behind commands produced before it, which are never held again;
  so it waits at most ``timeout`` seconds (the client's own), and the barrier cannot
  deadlock;
- commands of other accounts, and of other channels, are never held by it.

Pure: no Kafka, no threads; the caller (``actors.channel.ReplyChannel``) serialises the calls
and produces what they return, in the order returned. A retry of a command in flight goes
through the same rule (it does not wait for itself).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["OrderBarrier"]

T = TypeVar("T")


@dataclass(slots=True)
class _Account(Generic[T]):
    """One account's commands in flight and held. ``sent`` is in first-attempt order (a
    retry keeps its entry's place), so the oldest are at its front; ``to`` counts its
    commands per partition, so a check costs the partitions, not the commands in flight."""

    sent: dict[str, tuple[int, float]] = field(default_factory=dict)
    """command id → (partition of its last attempt, time of its first attempt)."""
    to: Counter[int] = field(default_factory=Counter)
    """partition → commands of ``sent`` whose last attempt went there."""
    held: deque[tuple[str, T, float]] = field(default_factory=deque)
    """(command id, what to produce, when held), in the order they came."""

    def send(self, command_id: str, partition: int, now: float) -> None:
        """In flight to ``partition``; a retry keeps its first-attempt time and its place."""
        entry = self.sent.get(command_id)
        if entry is not None:
            self.to[entry[0]] -= 1
            now = entry[1]
        self.sent[command_id] = (partition, now)
        self.to[partition] += 1

    def forget(self, command_id: str) -> float | None:
        """No longer in flight; its first-attempt time (None: it was not)."""
        entry = self.sent.pop(command_id, None)
        if entry is None:
            return None
        self.to[entry[0]] -= 1
        return entry[1]

    def elsewhere(self, command_id: str, partition: int) -> bool:
        """Whether a command other than ``command_id`` is in flight to another partition
        than ``partition``."""
        others = sum(n for p, n in self.to.items() if p != partition)
        own = self.sent.get(command_id)
        return others > (own is not None and own[0] != partition)

    def prune(self, now: float, timeout: float) -> None:
        """Forget the commands in flight ``timeout`` or longer (the oldest are first)."""
        while self.sent:
            command_id, (_, at) = next(iter(self.sent.items()))
            if now - at < timeout:
                return
            self.forget(command_id)


class OrderBarrier(Generic[T]):
    """``route(aggregate_id)`` is the account's owner now; ``clock`` monotonic seconds.
    ``held_total`` counts the commands ever held, ``holding`` those held now, and
    ``held_seconds`` is the time the released ones spent held, summed."""

    def __init__(
        self,
        route: Callable[[str], int],
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._route = route
        self.timeout = timeout
        self._clock = clock
        self._accounts: dict[str, _Account[T]] = {}
        self._waiting: set[str] = set()  # accounts with held commands
        self._swept = clock()
        self.held_total = 0
        self.held_seconds = 0.0

    @property
    def holding(self) -> int:
        return sum(len(self._accounts[a].held) for a in self._waiting)

    def admit(self, aggregate_id: str, command_id: str, item: T) -> int | None:
        """The partition to produce ``item`` to now (it is in flight from now on), or None:
        held (or already held), to come out of ``done`` or ``expire`` later."""
        account = self._accounts.get(aggregate_id)
        partition = self._route(aggregate_id)
        now = self._clock()
        if account is None:
            account = self._accounts[aggregate_id] = _Account()
        elif any(c == command_id for c, _, _ in account.held):
            return None
        account.prune(now, self.timeout)
        if account.held or account.elsewhere(command_id, partition):
            account.held.append((command_id, item, now))
            self._waiting.add(aggregate_id)
            self.held_total += 1
            return None
        account.send(command_id, partition, now)
        return partition

    def done(self, aggregate_id: str, command_id: str) -> list[tuple[T, int]]:
        """The command is answered, or given up (never produced, if it was held): what it
        held may go now, with the partitions to produce to, in order."""
        account = self._accounts.get(aggregate_id)
        if account is None:
            return []
        account.forget(command_id)
        if account.held:
            account.held = deque(h for h in account.held if h[0] != command_id)
        return self._release(aggregate_id, account)

    def expire(self) -> list[tuple[T, int]]:
        """What may go because the commands it waited for are in flight longer than
        ``timeout``, in order per account. Also forgets, once per ``timeout``, the commands
        in flight that long (never answered, never given up)."""
        released = [r for a in list(self._waiting) for r in self._release(a, self._accounts[a])]
        now = self._clock()
        if now - self._swept >= self.timeout:
            self._swept = now
            for a, account in list(self._accounts.items()):
                account.prune(now, self.timeout)
                if not account.sent and not account.held:
                    del self._accounts[a]
        return released

    def _release(self, aggregate_id: str, account: _Account[T]) -> list[tuple[T, int]]:
        released: list[tuple[T, int]] = []
        now = self._clock()
        if account.held:
            account.prune(now, self.timeout)
        while account.held:
            command_id, item, since = account.held[0]
            partition = self._route(aggregate_id)
            if account.elsewhere(command_id, partition):
                break
            account.held.popleft()
            account.send(command_id, partition, now)
            self.held_seconds += now - since
            released.append((item, partition))
        if not account.held:
            self._waiting.discard(aggregate_id)
            if not account.sent:
                del self._accounts[aggregate_id]
        return released
