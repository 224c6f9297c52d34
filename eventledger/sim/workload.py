"""The simulator's scheduler and its clients: from a seed, the next op. Clients send only
LEGAL input, chosen at its edges: ids shared across accounts and sources, amounts 0, 1 and
the largest, retries early, late and from another lane with their first attempt, closes
while money is in flight, post / void / expiry races, ids reused after the window, many
pendings on one account. Faults come from the same seed: crashes at any point of a batch,
aborts, a partition stopped past a window, clock jumps to a window's or a deadline's edge,
ids forgotten past their window, online rebuilds (a shadow's replays and checkpoints, its
death, the switch's pause, tail, switch and resume, with the rest going on in between); and,
for a seed with standbys, their tails at their own pace, takeovers (the writer paused
between batches or inside one) and the old writer waking after them."""

from __future__ import annotations

import random
from typing import Any, Final

from eventledger.sim.ops import (
    Advance,
    Batch,
    Crash,
    DriverCrash,
    DriverTick,
    Follow,
    Forget,
    Learn,
    Op,
    Rebuild,
    RebuildFinish,
    RebuildPause,
    RebuildResume,
    RebuildSwitch,
    Repartition,
    Resume,
    Send,
    Settle,
    ShadowCrash,
    ShadowReplay,
    Stop,
    Takeover,
    Wake,
)
from eventledger.sim.partition import Fault
from eventledger.sim.world import World
from ledger.commands import (
    CloseAccount,
    Deposit,
    OpenAccount,
    PostPending,
    Transfer,
    VoidPending,
    Withdraw,
)
from ledger.state import MAX_MINOR_UNITS

__all__ = ["Workload"]

ACCOUNTS: Final = ("ca", "cb", "cc", "cd", "ce", "cf", "cg")
SHARED_IDS: Final = ("inv-1", "inv-2", "inv-3")
_AMOUNTS: Final = (0, 1, 2, 40, MAX_MINOR_UNITS - 1, MAX_MINOR_UNITS)
_STANDBY_OPS: Final = 0.1  # of the ops after the prologue, for a seed with standbys
_REBUILD_OPS: Final = 0.1  # of the ops, while a rebuild replays
_SWITCH_OPS: Final = 0.6  # of the ops, while a rebuild's switch is under way (it is quick)
_FAULTS: Final = (
    Fault.CRASH_BEFORE_COMMIT,
    Fault.ABORT,
    Fault.CRASH_AFTER_COMMIT,
    Fault.SET_ASIDE,
    Fault.SET_ASIDE_LEG,
)


class Workload:
    """Draws ops from `rng`, looking at `world` only for what a client or an operator could
    know (its own sends, the wall clock, which partitions are stopped or have a standby or a
    zombie writer)."""

    def __init__(self, rng: random.Random, world: World) -> None:
        self.rng = rng
        self.world = world
        self.counter = 0
        self.sends: list[Send] = []
        self.transfers: dict[str, list[str]] = {}  # source → transfer ids it sent
        self.skews = [rng.randint(-300, 300) for _ in range(world.config.reply_lanes)]
        self.prologue = self._prologue()

    def _prologue(self) -> list[Op]:
        """Most accounts open with some money first, so that most commands move money."""
        ops: list[Op] = []
        at = self.world.now_ms
        for account in ACCOUNTS:
            if self.rng.random() < 0.8:
                currency = "USD" if self.rng.random() < 0.2 else "EUR"
                ops.append(Send(0, account, OpenAccount(currency), f"open-{account}", at))
                ops.append(
                    Send(1, account, Deposit(self.rng.randint(1, 500)), f"fund-{account}", at)
                )
        ops += [Batch(p, 64, p) for p in range(self.world.count)]
        return ops

    def next(self) -> Op:
        if self.prologue:
            return self.prologue.pop(0)
        if self.world.config.growths:
            move = self.move_op()
            if move is not None:
                return move
        rebuilds = self.world.rebuilds
        if rebuilds.active:
            share = _SWITCH_OPS if rebuilds.mid_switch() else _REBUILD_OPS
            if self.rng.random() < share:
                return self.rebuild_op()
        if self.world.standbys and self.rng.random() < _STANDBY_OPS:
            return self.standby_op()
        r = self.rng.random()
        if r < 0.30:
            return self.new_send()
        if r < 0.38 and self.sends:
            return self.retry()
        if r < 0.76:
            return self.batch()
        if r < 0.92:
            return self.advance()
        if r < 0.96:
            return self.stop_or_resume()
        if r < 0.98:
            p = self.rng.randrange(self.world.count)
            return Crash(p, forget=self.rng.random() < 0.5)
        if r < 0.985:
            return Forget(self.rng.randrange(self.world.count))
        if r < 0.99:
            lost = sorted(self.world.lost)
            p = self.rng.choice(lost) if lost else 0
            return Settle(p, refund=self.rng.random() < 0.5)
        return Rebuild(self.rng.randrange(self.world.count))

    def move_op(self) -> Op | None:
        """A seed that repartitions: now and then the next growth requested; while one is
        under way, the driver's ticks (one in ten with a lost answer), its crashes, and
        clients learning the table. None: no such op this time."""
        rng = self.rng
        r = rng.random()
        moving = self.world.repartition
        if moving.active:
            if r < 0.10:
                return DriverTick(flaky=rng.random() < 0.1)
            if r < 0.105:
                return DriverCrash()
        elif r < 0.01:
            record = moving.desired.repartition
            done = 0 if record is None else record.number
            growths = self.world.config.growths
            if done < len(growths):
                return Repartition(growths[done], rng.choice((1, 2)))
        if 0.2 < r < 0.22:
            return Learn(rng.randrange(self.world.config.reply_lanes))
        return None

    def standby_op(self) -> Op:
        """Mostly a standby's fetch (so that standbys lag by a varying number of records,
        often inside a batch); now and then a takeover, and the zombie it leaves waking."""
        rng = self.rng
        p = rng.choice(sorted(self.world.standbys))
        r = rng.random()
        if r < 0.70:
            return Follow(p, rng.choice((1, 2, 5, 20, None)))
        if r < 0.85 or not self.world.zombies:
            return Takeover(p, rng.random() < 0.5, rng.choice((1, 8, 32)), rng.getrandbits(32))
        p = rng.choice(sorted(self.world.zombies))
        return Wake(p, rng.choice((1, 8, 32)), rng.getrandbits(32))

    def rebuild_op(self) -> Op:
        """The next step of a rebuild under way (the coordinator's), now and then its
        shadow's death."""
        rng = self.rng
        p = rng.choice(sorted(self.world.rebuilds.active))
        r = self.world.rebuilds.active[p]
        roll = rng.random()
        if r.switched:
            return RebuildResume(p)
        if roll < 0.05:
            return ShadowCrash(p)
        if r.handover is not None:
            return RebuildSwitch(p)
        if r.paused is not None:
            return RebuildFinish(p)
        if r.shadow is not None and roll < 0.3:
            return RebuildPause(p)
        return ShadowReplay(p, rng.choice((1, 5, 20, None)), rng.random() < 0.3)

    # -- faults and time ------------------------------------------------------------------------

    def batch(self) -> Batch:
        rng = self.rng
        fault = rng.choice(_FAULTS) if rng.random() < 0.06 else Fault.NONE
        return Batch(
            rng.randrange(self.world.count),
            rng.choice((1, 2, 3, 8, 32)),
            rng.getrandbits(32),
            fault,
        )

    def advance(self) -> Advance:
        rng = self.rng
        window = self.world.config.window_ms
        if rng.random() < 0.15 and self.sends:  # to a window's edge, or a deadline's
            send = rng.choice(self.sends)
            edge = send.first_attempt_ms + window + rng.choice((-1, 0, 1))
            timeout = send.command.timeout_ms if isinstance(send.command, Transfer) else None
            if timeout is not None and rng.random() < 0.5:
                edge = send.first_attempt_ms + timeout + rng.choice((-1, 0, 1))
            if edge > self.world.now_ms:
                return Advance(edge - self.world.now_ms)
        if rng.random() < 0.03:
            return Advance(window + rng.randint(1, window))  # past a whole window
        return Advance(rng.choice((1, 5, 50, 200, 1000)))

    def stop_or_resume(self) -> Op:
        stopped = sorted(self.world.stopped)
        if stopped and self.rng.random() < 0.6:
            return Resume(self.rng.choice(stopped))
        return Stop(self.rng.randrange(self.world.count))

    # -- clients ---------------------------------------------------------------------------------

    def retry(self) -> Send:
        """The same command again, with its id and first attempt: from its own lane or
        another (a retry from another process)."""
        send = self.rng.choice(self.sends[-50:])
        lane = self.rng.randrange(self.world.config.reply_lanes)
        return Send(
            lane,
            send.account,
            send.command,
            send.command_id,
            send.first_attempt_ms,
            send.expected_version,
        )

    def new_send(self) -> Send:
        rng = self.rng
        lane = rng.randrange(self.world.config.reply_lanes)
        account = rng.choice(ACCOUNTS)
        command = self.command(account)
        command_id = self.command_id(command)
        first = self.world.now_ms + self.skews[lane]
        roll = rng.random()
        if roll < 0.05:  # a late retry from another process: first tried long ago
            first -= self.world.config.window_ms - rng.randint(0, 2000)
        elif roll < 0.07:
            first += rng.randint(0, 1000)  # a client clock ahead
        expected = rng.randint(0, 6) if rng.random() < 0.05 else None
        foreign = bool(self.world.config.growths) and rng.random() < 0.03
        send = Send(lane, account, command, command_id, max(first, 0), expected, foreign)
        self.sends.append(send)
        if isinstance(command, Transfer):
            self.transfers.setdefault(account, []).append(command_id)
        return send

    def command_id(self, command: Any) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            return rng.choice(SHARED_IDS)
        if roll < 0.27:  # a legal id that looks like a transfer leg's
            return f"{rng.choice(SHARED_IDS)}/{rng.choice(('expire', 'settle', 'release'))}"
        if roll < 0.32 and self.sends:  # an id used before, perhaps past its window now
            return rng.choice(self.sends).command_id
        self.counter += 1
        return f"c{self.counter}"

    def amount(self) -> int:
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(_AMOUNTS)
        return rng.randint(1, 100)

    def command(self, account: str) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            limit = rng.choice((0, 0, 0, 50, MAX_MINOR_UNITS))
            return OpenAccount(rng.choice(("EUR", "EUR", "USD")), limit)
        if roll < 0.30:
            return Deposit(self.amount())
        if roll < 0.40:
            return Withdraw(self.amount())
        if roll < 0.45:
            return CloseAccount()
        if roll < 0.80:
            target = rng.choice((*ACCOUNTS, "nobody"))
            pending = rng.random() < 0.4
            timeout = None
            if pending and rng.random() < 0.6:
                timeout = rng.choice((1, 100, 1000, self.world.config.window_ms * 2))
            return Transfer(target, self.amount(), pending, timeout)
        tid = rng.choice([*self.transfers.get(account, []), *SHARED_IDS])
        if roll < 0.92:
            amount = None if rng.random() < 0.6 else self.amount()
            return PostPending(tid, amount)
        return VoidPending(tid)
