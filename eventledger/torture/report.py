"""The run's tables: anomalies per fault kind (a column each), outcomes and money, faults.

An op is attributed to a fault kind when its life (first send to reply, or to the end of its
budget) overlaps the window of a fault of that kind (injection to recovery, plus ``grace``);
an op overlapping none is in the ``no fault`` row. Anomalies of the whole run (the totals, an
account the actors hold differently, an event no client sent) appear in the ``all`` row only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table

from eventledger.torture.checker import Anomaly
from eventledger.torture.faults import Fault, FaultRecord
from eventledger.torture.gap import gap_summary
from eventledger.torture.history import Op
from eventledger.torture.run import TortureResult

__all__ = ["Row", "attribute", "print_result"]

NO_FAULT = "no fault"
ALL = "all"


@dataclass
class Row:
    label: str
    injected: int = 0
    failed: int = 0
    commands: int = 0
    answered: int = 0
    retried: int = 0
    anomalies: Counter[Anomaly] = field(default_factory=Counter)


def attribute(
    ops: Sequence[Op],
    faults: Sequence[FaultRecord],
    op_anomalies: dict[int, set[Anomaly]],
    kinds: Sequence[Fault],
    *,
    grace: float,
) -> list[Row]:
    """One row per fault kind, then ``no fault``; each counts the ops that overlapped."""
    rows = {k: Row(k.value) for k in kinds}
    quiet = Row(NO_FAULT)
    windows: dict[Fault, list[tuple[float, float]]] = {k: [] for k in kinds}
    for f in faults:
        row = rows.setdefault(f.kind, Row(f.kind.value))
        row.injected += 1
        row.failed += 0 if f.ok else 1
        if f.ok:
            end = f.ended if f.ended is not None else float("inf")
            windows.setdefault(f.kind, []).append((f.started, end + grace))
    for op in ops:
        end = op.ended if op.ended is not None else op.deadline
        hit = [
            rows[k]
            for k, spans in windows.items()
            if any(start <= end and op.started <= stop for start, stop in spans)
        ]
        for row in hit or [quiet]:
            row.commands += 1
            row.answered += 1 if op.answers else 0
            row.retried += 1 if op.attempts > 1 else 0
            row.anomalies.update(op_anomalies.get(op.op_id, set()))
    return [*rows.values(), quiet]


def print_result(console: Console, result: TortureResult) -> None:
    """The three tables, and a verdict line."""
    c = result.check
    rows = attribute(
        result.ops,
        result.faults,
        c.op_anomalies,
        result.config.faults,
        grace=2 * result.config.policy.attempt_timeout,
    )
    total = Row(ALL, commands=c.ops, answered=sum(1 for o in result.ops if o.answers))
    total.injected = len(result.faults)
    total.failed = sum(1 for f in result.faults if not f.ok)
    total.retried = c.retried
    total.anomalies = Counter(c.counts)
    table = Table(
        title=(
            f"eventledger torture · {result.app_id} · {result.config.seconds:.0f} s · "
            f"{result.config.clients} clients · {result.config.accounts} accounts · "
            f"seed {result.config.seed}"
            + (f" · {result.config.brokers} brokers" if result.config.brokers > 1 else "")
        ),
        box=box.SIMPLE_HEAD,
    )
    columns = [*rows, total]
    table.add_column("")
    for row in columns:
        table.add_column(row.label, justify="right")
    table.add_row(
        "faults",
        *(
            "-"
            if row.label == NO_FAULT
            else f"{row.injected}" + (f" ({row.failed} failed)" if row.failed else "")
            for row in columns
        ),
    )
    table.add_row("commands", *(f"{row.commands:,}" for row in columns))
    table.add_row("answered", *(f"{row.answered:,}" for row in columns))
    table.add_row("retried", *(f"{row.retried:,}" for row in columns))
    table.add_section()
    for a in Anomaly:
        table.add_row(a.value, *(_count(row.anomalies[a]) for row in columns))
    # Not a terminal (a pipe, a CI log): render at a width that fits every fault's column.
    console.print(table, width=None if console.is_terminal else max(console.width, 120))

    console.print(_outcomes(result))

    log = Table(title="faults injected", box=box.SIMPLE_HEAD)
    for name, justify in (
        ("at", "right"),
        ("for", "right"),
        ("fault", "left"),
        ("target", "left"),
        ("gap", "right"),
    ):
        log.add_column(name, justify=justify)  # type: ignore[arg-type]
    gaps = result.gaps()
    for f, gap in zip(result.faults, gaps, strict=True):
        span = "-" if f.ended is None else f"{f.ended - f.started:.1f} s"
        target = f.target if f.ok else f"[red]failed:[/] {f.detail}"
        log.add_row(f"{f.started:.1f} s", span, f.kind.value, target, str(gap))
    if result.faults:
        console.print(log)
        summary = gap_summary((f.kind.value, g) for f, g in zip(result.faults, gaps, strict=True))
        console.print(
            "answer gap (the longest silence of the partitions a fault hit, up to its "
            "recovery): "
            + (
                "; ".join(
                    f"{kind} median {median:.2f} s, max {top:.2f} s (of {n})"
                    for kind, (n, median, top) in summary.items()
                )
                or "none measured"
            )
        )

    if result.repartitions:
        width = None if console.is_terminal else max(console.width, 120)
        console.print(_repartitions(result), width=width)

    for a, examples in c.examples.items():
        for e in examples:
            console.print(f"[red]{a.value}:[/] {e}")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    if result.ok:
        console.print(f"[bold green]no anomaly[/] in {c.ops:,} commands")
    else:
        found = ", ".join(f"{n} {a.value}" for a, n in c.counts.items() if n)
        console.print(f"[bold red]ANOMALIES:[/] {found or 'see the notes'}")


def _outcomes(result: TortureResult) -> Table:
    """Answers by code, attempt errors, events, transfers, reads, and the three totals."""
    c = result.check
    outcomes = Table(title="outcomes and money", box=box.SIMPLE_HEAD)
    outcomes.add_column("measure")
    outcomes.add_column("value", justify="right")
    for code, n in sorted(c.codes.items()):
        outcomes.add_row(f"answer: {code}", f"{n:,}")
    for name, n in sorted(result.errors.items()):
        outcomes.add_row(f"attempt ended by {name}", f"{n:,}")
    outcomes.add_row("command ids shared by two accounts' commands", f"{result.shared_ids:,}")
    outcomes.add_row("events committed", f"{c.events:,}")
    outcomes.add_row("transfers (ids with events)", f"{c.transfers:,}")
    reads = "{:,} ({:,})".format(*c.state_reads)
    outcomes.add_row("state-topic reads checked (failed: broker down)", reads)
    if result.forwarded is not None:
        outcomes.add_row("records forwarded (since each worker started)", f"{result.forwarded:,}")
    crossed = c.crossed_and(Anomaly.LOST), c.crossed_and(Anomaly.PHANTOM)
    outcomes.add_row("lost / phantom ops that got a crossed reply", f"{crossed[0]} / {crossed[1]}")
    outcomes.add_section()
    outcomes.add_row("Σ accepted moves", f"{c.expected_total:,}")
    outcomes.add_row("Σ balances folded from the events", f"{c.events_total:,}")
    actors = "-" if c.actors_total is None else f"{c.actors_total:,}"
    outcomes.add_row("Σ balances held by the actors", actors)
    return outcomes


def _repartitions(result: TortureResult) -> Table:
    """Each repartition the run started: its phase, moves and the legs' pauses."""
    table = Table(title="repartitions", box=box.SIMPLE_HEAD)
    for name in ("#", "from → to", "phase", "moves published", "handed off"):
        table.add_column(name, justify="left" if name == "phase" else "right")
    for name in ("handoff pause p50 / max", "install pause p50 / max", "took"):
        table.add_column(name, justify="right")

    def pause(p50: float | None, top: float | None) -> str:
        return "-" if p50 is None or top is None else f"{p50:.0f} / {top:.0f} ms"

    for r in result.repartitions:
        table.add_row(
            f"{r.number}",
            f"{r.from_partitions} → {r.to_partitions}",
            r.phase + (f" ({r.error})" if r.error else ""),
            f"{r.published}/{r.moves}",
            f"{r.handed_off}",
            pause(r.handoff_p50, r.handoff_max),
            pause(r.install_p50, r.install_max),
            "-" if r.seconds is None else f"{r.seconds:.1f} s",
        )
    return table


def _count(n: int) -> str:
    return "[bold red]" + f"{n:,}" + "[/]" if n else "0"
