"""What `eventledger simulate` prints: the table of a run over many seeds, and for a
failing seed its (shortened) trace and the command line that replays it."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from eventledger.sim.run import Outcome, Summary
from ledger.rejections import RejectionCode
from topology.codes import FlowCode

__all__ = ["print_failure", "print_summary", "replay_command"]

_TRACE_TAIL = 40


def replay_command(
    outcome: Outcome,
    steps: int,
    partitions: int,
    *,
    rebuild_guard: bool = True,
    move_guard: bool = True,
) -> str:
    """The command line that replays `outcome`'s seed exactly."""
    guard = ("" if rebuild_guard else " --no-rebuild-guard") + (
        "" if move_guard else " --no-move-guard"
    )
    return (
        f"eventledger simulate --seed {outcome.seed} --steps {steps} "
        f"--partitions {partitions}{guard}"
    )


def print_summary(console: Console, summary: Summary) -> None:
    rate = summary.operations / summary.seconds if summary.seconds else 0.0
    table = Table(title="eventledger simulate", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("seeds", f"{summary.seeds:,}")
    table.add_row("steps (ops drawn)", f"{summary.steps:,}")
    table.add_row("commands sent (retries included)", f"{summary.commands:,}")
    table.add_row("commands and legs decided (operations)", f"{summary.operations:,}")
    table.add_row("wall time", f"{summary.seconds:,.1f} s")
    table.add_row("operations per second", f"{rate:,.0f}")
    table.add_row("steps per second", f"{summary.steps / max(summary.seconds, 1e-9):,.0f}")
    for code, what in (
        (RejectionCode.TOO_MANY_OPEN_TRANSFERS, "refused at a cap on open transfers"),
        (FlowCode.STATE_TOO_LARGE, "refused by the snapshot limit"),
    ):
        table.add_row(what, f"{summary.refusals[code]:,}")
    table.add_row("standbys promoted (takeovers)", f"{summary.takeovers:,}")
    table.add_row("zombie writers' batches fenced", f"{summary.fenced:,}")
    table.add_row("rebuilds switched", f"{summary.switched:,}")
    table.add_row("rebuild switches refused", f"{summary.refused:,}")
    for what in (
        "seeds that repartitioned",
        "seeds that shrank",
        "moves published",
        "accounts moved",
        "records forwarded",
        "driver crashes",
    ):
        table.add_row(what, f"{summary.moves[what]:,}")
    rules = Counter(f.violation.rule for f in summary.failures if f.violation is not None)
    table.add_row("seeds with a violation", f"{len(summary.failures):,}")
    for rule, count in sorted(rules.items()):
        table.add_row(f"  {rule}", f"{count:,}")
    console.print(table)


def print_failure(console: Console, outcome: Outcome, replay: str) -> None:
    """The violation, the ops that led to it (the last ones of a long trace), the replay."""
    assert outcome.violation is not None
    console.print(f"[bold red]seed {outcome.seed}: {outcome.violation}[/]")
    ops = outcome.ops
    shown = ops[-_TRACE_TAIL:]
    if len(ops) > len(shown):
        console.print(f"  … {len(ops) - len(shown)} earlier ops")
    for i, op in enumerate(shown, start=len(ops) - len(shown) + 1):
        console.print(f"  {i:>5}  {op}", markup=False, highlight=False)
    if outcome.at_step >= len(ops):
        console.print("  (broken in the quiet phase, after the last op)")
    console.print(f"replay: {replay}")
