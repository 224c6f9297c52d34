"""Running the simulator: one seed's ops, the quiet phase, the checks, and what a failing
seed prints (a short trace and the command that replays it); many seeds over processes.

A run is a function of its ops: `run_trace(ops)` replays any trace exactly (the quiet phase
is derived from the state, not drawn), so a trace can be shortened op by op (`shrink`) and
stays a reproduction as long as it still fails the same rule.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from eventledger.sim.checker import Checker, InvariantError
from eventledger.sim.ops import (
    Advance,
    Batch,
    DriverTick,
    Follow,
    Learn,
    Op,
    RebuildFinish,
    RebuildResume,
    RebuildSwitch,
    Resume,
    Send,
    Settle,
    Wake,
)
from eventledger.sim.workload import Workload
from eventledger.sim.world import SimConfig, World
from ledger.aggregate import AccountAggregate
from ledger.state import MAX_OPEN_TRANSFERS
from topology.codec.aggregate import Codec
from topology.limits import MAX_SNAPSHOT_BYTES

__all__ = ["Outcome", "Summary", "config_for", "run_seed", "run_seeds", "run_trace", "shrink"]

_QUIET_ROUNDS = 3
_QUIET_MOVE_TICKS = 200  # a bound: a move that never completes is stuck
_QUIET_BATCHES = 10_000  # a bound: a partition that never runs out of work is blocked
_CAPS = (1, 2, 3, MAX_OPEN_TRANSFERS)  # small caps, so that seeds reach them
_SMALL_SNAPSHOT_BYTES = 160  # about a simulated account's view with a transfer or two in it
_MARKER_LAGS = (0, 2, 8, 32)  # the most steps a commit's marker lands after it, per seed
_MOVES_SHARE = 1 / 4  # the seeds that repartition online
_GROWTHS = {2: ((4,), (4, 8)), 4: ((6,), (8,))}  # from N partitions, the counts grown to
_SHRINK_SHARE = 1 / 2  # of the seeds that repartition, those whose repartitions also shrink


@dataclass
class Outcome:
    """How one run ended: `violation` None when every invariant held."""

    seed: int | None
    ops: list[Op]
    violation: InvariantError | None
    at_step: int  # the op during which it broke (len(ops): in the quiet phase)
    operations: int  # commands and legs decided in committed batches
    commands: int  # commands sent
    refusals: Counter[str] = field(default_factory=Counter)  # decided refusals, by code
    takeovers: int = 0  # standbys promoted
    fenced: int = 0  # zombie batches the fence refused
    switched: int = 0  # rebuilds switched
    refused: list[str] = field(default_factory=list)  # rebuild switches refused, and why
    moves: tuple[int, int, int, int] = (0, 0, 0, 0)  # see `_moves`
    shrinks: int = 0  # repartitions done to fewer partitions than they started from


def config_for(
    seed: int,
    partitions: int = 3,
    *,
    rebuild_guard: bool = True,
    move_guard: bool = True,
    moves: bool = True,
) -> SimConfig:
    """The deployment of a seed, drawn from the seed: its partitions' clock skews, the
    ledger's cap on open transfers (small, mostly), for one seed in eight a snapshot
    limit small enough that the size guard refuses commands and sets legs aside, for
    half the seeds a standby on every partition, and the most steps a commit's markers
    land after it (0 for a quarter of the seeds). Each draw comes after those of the
    seeds before it was modelled. A quarter of the seeds repartition online: they start
    with 2 partitions and grow to 4 (and then 8), or with 4 and grow to 6 or 8; half of
    those also shrink (`_with_shrink`).
    `rebuild_guard` False runs the rebuild without the guard of commit 7beaf85, and
    `move_guard` False a source that does not adopt its handoff's slot record (for the tests
    that show the checker finds their defects); `moves` False keeps every seed at its
    `partitions`, as before repartitions were modelled (for the regression seeds)."""
    rng = random.Random(f"config-{seed}")
    skews = tuple(rng.randint(-500, 500) for _ in range(partitions))
    small = rng.random() < 1 / 8
    cap = rng.choice(_CAPS)
    standbys = tuple(range(partitions)) if rng.random() < 1 / 2 else ()
    marker_lag = rng.choice(_MARKER_LAGS)
    growths: tuple[int, ...] = ()
    if rng.random() < _MOVES_SHARE and moves:
        partitions = rng.choice(sorted(_GROWTHS))
        growths = rng.choice(_GROWTHS[partitions])
        standbys = tuple(range(partitions)) if standbys else ()
        if rng.random() < _SHRINK_SHARE:  # drawn last: every draw before keeps its value
            growths = _with_shrink(partitions, growths, rng)
    return SimConfig(
        partitions=partitions,
        reply_lanes=2,
        window_ms=10_000,
        skews_ms=skews,
        max_open_transfers=cap,
        max_snapshot_bytes=_SMALL_SNAPSHOT_BYTES if small else MAX_SNAPSHOT_BYTES,
        standbys=standbys,
        marker_lag=marker_lag,
        marker_seed=seed,
        rebuild_guard=rebuild_guard,
        growths=growths,
        move_guard=move_guard,
    )


def _with_shrink(start: int, growths: tuple[int, ...], rng: random.Random) -> tuple[int, ...]:
    """A seed's repartitions with a shrink among them, one of: the growths then a shrink back
    to `start`; the growths, a shrink to a count between, and a growth back into the
    drained partitions; or a shrink of the application as deployed (its slots assigned by
    that shrink), then a growth past its topics."""
    top = growths[-1]
    match rng.randrange(3):
        case 0:
            return (*growths, start)
        case 1:
            return (*growths, rng.randint(start, top - 1), top)
        case _:
            return (rng.randint(1, start - 1), top)


def _world(config: SimConfig) -> World:
    return World(Codec(AccountAggregate(config.max_open_transfers)), config)


def _ops(seed: int, steps: int, world: World) -> Iterator[Op]:
    workload = Workload(random.Random(seed), world)
    for _ in range(steps):
        yield workload.next()


def run_seed(
    seed: int,
    steps: int,
    partitions: int = 3,
    *,
    rebuild_guard: bool = True,
    move_guard: bool = True,
    moves: bool = True,
) -> Outcome:
    """Draw `steps` ops from `seed`, apply and check each, then the quiet phase."""
    config = config_for(
        seed, partitions, rebuild_guard=rebuild_guard, move_guard=move_guard, moves=moves
    )
    world = _world(config)
    return _run(world, _ops(seed, steps, world), seed)


def run_trace(ops: Sequence[Op], config: SimConfig) -> Outcome:
    """Replay `ops` exactly, then the quiet phase."""
    return _run(_world(config), iter(ops), None)


def _run(world: World, ops: Iterator[Op], seed: int | None) -> Outcome:
    checker = Checker(world)
    done: list[Op] = []
    try:
        for op in ops:
            done.append(op)
            _apply(world, op)
            checker.step()
        _quiet(world, checker)
        checker.quiet()
    except InvariantError as violation:
        return _outcome(world, checker, seed, done, violation)
    return _outcome(world, checker, seed, done, None)


def _outcome(
    world: World, checker: Checker, seed: int | None, done: list[Op], broke: InvariantError | None
) -> Outcome:
    return Outcome(
        seed,
        done,
        broke,
        len(done),
        checker.decisions,
        _sent(world),
        checker.refusals,
        world.takeovers,
        world.fenced,
        world.rebuilds.switched,
        world.rebuilds.refused,
        _moves(world, checker),
        world.repartition.shrinks(),
    )


def _moves(world: World, checker: Checker) -> tuple[int, int, int, int]:
    """Moves published, accounts moved (arrivals), records forwarded, driver crashes."""
    r = world.repartition
    return r.published_moves(), checker.ownership.arrivals, checker.forwarded, r.crashes


def _sent(world: World) -> int:
    return sum(len(a.lanes) for c in world.sent.values() for a in c.values())


def _apply(world: World, op: Op) -> None:
    try:
        world.apply(op)
    except InvariantError:
        raise
    except Exception as error:  # the pure code failed on legal input
        raise InvariantError("blocked", f"{op} raised {type(error).__name__}: {error}") from error


def _quiet(world: World, checker: Checker) -> None:
    """Stop the faults and let everything finish: end every rebuild's switch under way
    (its tail waits for the markers owed), resume every partition, wake every
    zombie writer (the fence must refuse it), run the partitions out of
    work, settle every lost leg (an operator, who first gives the partitions the service's
    snapshot limit: a leg the size guard refused may need it), retry what got no final
    reply (as a client does on a timeout, with its id and first attempt), and move time past
    every deadline."""
    for p in sorted(world.stopped):
        _apply(world, Resume(p))
    for p in world.rebuilds.mid_switch():
        for _ in range(world.config.marker_lag + 2):
            _apply(world, RebuildFinish(p))
        for op in (RebuildSwitch(p), RebuildResume(p)):
            _apply(world, op)
            checker.step()
        if world.rebuilds.paused(p):
            raise InvariantError("blocked", f"p{p} is still paused for its switch")
    for p in sorted(world.zombies):  # every paused writer wakes at last
        _apply(world, Wake(p))
        checker.step()
    _drain(world, checker)
    _finish_moves(world, checker)
    for worker in world.partitions:
        worker.max_snapshot_bytes = MAX_SNAPSHOT_BYTES
    for i, p in enumerate(sorted(p for p, legs in world.lost.items() for _ in legs)):
        _apply(world, Settle(p, refund=i % 2 == 0))  # the operator settles every lost leg
    _drain(world, checker)
    for _ in range(_QUIET_ROUNDS):
        unanswered = [a for c in world.sent.values() for a in c.values() if not a.answered]
        if not unanswered:
            break
        for a in sorted(unanswered, key=lambda a: (a.account, a.command_id, a.fingerprint)):
            _apply(world, Send(a.lanes[0], a.account, a.command, a.command_id, a.first_attempt_ms))
        _drain(world, checker)
    for _ in range(_QUIET_ROUNDS):
        deadlines = [at for w in world.partitions if (at := w.deadlines.next_at()) is not None]
        if not deadlines:
            break
        latest = max(at - world.wall(w.partition) for w in world.partitions for at in deadlines)
        _apply(world, Advance(max(latest, 0) + 1))
        _drain(world, checker)
    for p in sorted(world.standbys):  # a standby that reads to the end is its writer
        _apply(world, Follow(p, None))


def _finish_moves(world: World, checker: Checker) -> None:
    """The repartition under way runs to its end (every move published), the driver ticking
    between rounds of batches; then every client lane learns the table."""
    for _ in range(_QUIET_MOVE_TICKS):
        if not world.repartition.active:
            break
        _apply(world, DriverTick())
        checker.step()
        _drain(world, checker)
    record = world.repartition.desired.repartition
    if record is not None and world.repartition.active:
        states = ", ".join(f"{m.move_id} {m.source}→{m.target} {m.state}" for m in record.moves)
        raise InvariantError("moves", f"the repartition is still under way once quiet: {states}")
    for lane in range(world.config.reply_lanes):
        _apply(world, Learn(lane))


def _drain(world: World, checker: Checker) -> None:
    for _ in range(_QUIET_BATCHES):
        if world.idle():
            return
        for p in range(world.count):
            _apply(world, Batch(p, 64, p))
            checker.step()
    raise InvariantError("blocked", f"still busy after {_QUIET_BATCHES} rounds of batches")


def shrink(outcome: Outcome, config: SimConfig, budget_s: float = 30.0) -> Outcome:
    """A shorter trace that fails the same rule: drop chunks of ops while it still does
    (delta debugging, bounded by `budget_s`)."""
    assert outcome.violation is not None
    rule = outcome.violation.rule
    best = outcome
    deadline = time.monotonic() + budget_s
    chunk = max(len(best.ops) // 2, 1)
    while chunk >= 1 and time.monotonic() < deadline:
        i = 0
        shrunk = False
        while i < len(best.ops) and time.monotonic() < deadline:
            candidate = best.ops[:i] + best.ops[i + chunk :]
            tried = run_trace(candidate, config)
            if tried.violation is not None and tried.violation.rule == rule:
                best = Outcome(
                    outcome.seed,
                    tried.ops,
                    tried.violation,
                    tried.at_step,
                    tried.operations,
                    tried.commands,
                    tried.refusals,
                    tried.takeovers,
                    tried.fenced,
                    tried.switched,
                    tried.refused,
                    tried.moves,
                )
                shrunk = True
            else:
                i += chunk
        if not shrunk:
            chunk //= 2
    return best


@dataclass
class Summary:
    """Many seeds' results."""

    seeds: int = 0
    steps: int = 0
    operations: int = 0
    commands: int = 0
    seconds: float = 0.0
    failures: list[Outcome] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    takeovers: int = 0
    fenced: int = 0
    switched: int = 0
    refused: int = 0
    moves: Counter[str] = field(default_factory=Counter)


def _one(args: tuple[int, int, int, bool, bool]) -> Outcome:
    seed, steps, partitions, rebuild_guard, move_guard = args
    outcome = run_seed(seed, steps, partitions, rebuild_guard=rebuild_guard, move_guard=move_guard)
    if outcome.violation is None:
        outcome.ops = []  # only failures travel back whole
    return outcome


def run_seeds(
    seeds: Sequence[int],
    steps: int,
    *,
    partitions: int = 3,
    workers: int = 1,
    on_done: Callable[[Outcome], None] | None = None,
    rebuild_guard: bool = True,
    move_guard: bool = True,
) -> Summary:
    """Run every seed (over `workers` processes); `on_done` is told of each as it ends."""
    summary = Summary()
    started = time.monotonic()
    jobs = [(seed, steps, partitions, rebuild_guard, move_guard) for seed in seeds]
    if workers <= 1:
        results: Iterator[Outcome] = map(_one, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_one, jobs, chunksize=1)
    try:
        for outcome in results:
            summary.seeds += 1
            summary.steps += outcome.at_step
            summary.operations += outcome.operations
            summary.commands += outcome.commands
            summary.refusals += outcome.refusals
            summary.takeovers += outcome.takeovers
            summary.fenced += outcome.fenced
            summary.switched += outcome.switched
            summary.refused += len(outcome.refused)
            names = ("moves published", "accounts moved", "records forwarded", "driver crashes")
            summary.moves.update(dict(zip(names, outcome.moves, strict=True)))
            summary.moves["seeds that repartitioned"] += outcome.moves[0] > 0
            summary.moves["seeds that shrank"] += outcome.shrinks > 0
            if outcome.violation is not None:
                summary.failures.append(outcome)
            if on_done is not None:
                on_done(outcome)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    summary.seconds = time.monotonic() - started
    return summary
