"""Rich tables for what the CLI prints."""

from __future__ import annotations

from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from actors.messages import RebuildProgress, RowState, ServiceStatus, StatusRow
from eventledger.demo import DemoReport
from topology.control import RebuildPhase, RepartitionPhase, RepartitionRecord

__all__ = [
    "json_rows",
    "not_running",
    "print_demo",
    "print_moves",
    "print_rebuilds",
    "print_status",
    "repartition_line",
]


def print_demo(console: Console, r: DemoReport) -> None:
    table = Table(title=f"eventledger demo · {r.app_id} · {r.partitions} partitions")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("commands sent (opens + moves)", f"{r.sent:,}")
    table.add_row("accepted", f"{r.accepted:,}")
    for code, n in sorted(r.rejected.items()):
        table.add_row(f"rejected: {code}", f"{n:,}")
    # as the bench's e2e phase names its settings: a closed loop, so the round trip includes
    # the queue of commands in flight
    setting = f"e2e, 1 client × {r.window} in flight"
    table.add_row(f"moves/s ({setting}, replies awaited)", f"{r.throughput:,.0f}")
    table.add_row(f"round trip p50 ({setting})", f"{r.percentile(0.50):.1f} ms")
    table.add_row(f"round trip p99 ({setting})", f"{r.percentile(0.99):.1f} ms")
    if r.http is not None:
        h = r.http
        over = f"HTTP {h.serving}, 1 client × {h.in_flight} in flight"
        table.add_row(f"deposits/s ({over}, answers awaited)", f"{h.rate:,.0f}")
        ratio = h.rate / r.throughput if r.throughput else 0.0
        table.add_row("HTTP ÷ Python client (rates above)", f"{ratio:.2f}")
        table.add_row(
            f"round trip p50 / p99 ({over})",
            f"{h.percentile(0.5):.1f} / {h.percentile(0.99):.1f} ms",
        )
        refused = ", ".join(f"{n:,} × {status}" for status, n in sorted(h.refused.items()))
        table.add_row(
            "HTTP deposits sent / accepted",
            f"{h.sent:,} / {h.accepted:,}" + (f" ({refused})" if refused else ""),
        )
        table.add_row(
            "HTTP deposits sent again (a connection broke, or 503/504; same key)", f"{h.resent:,}"
        )
    table.add_section()
    for kind, n in sorted(r.transfers.items()):
        table.add_row(f"transfer {kind}", f"{n:,}")
    table.add_section()
    table.add_row("Σ accepted deposits − withdrawals", f"{r.expected_total:,}")
    table.add_row("Σ balances held by the actors", f"{r.actor_total:,}")
    table.add_row("Σ balances folded from the events topic", f"{r.events_total:,}")
    table.add_row("accounts (actors / events)", f"{r.actor_accounts:,} / {r.event_accounts:,}")
    table.add_row("accounts whose balance differs", f"{r.mismatched_accounts:,}")
    table.add_row("money in flight once quiet", f"{r.in_flight:,}")
    table.add_row("transfers not debited once and landed once", f"{r.broken_transfers:,}")
    verdict = "[bold green]money conserved[/]" if r.money_ok else "[bold red]MISMATCH[/]"
    table.add_row("money check", verdict)
    console.print(table)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


_STATE_STYLE = {
    RowState.RUNNING: "green",
    RowState.REBUILDING: "cyan",
    RowState.PAUSED: "yellow",
    RowState.RESTORING: "yellow",
    RowState.RESTARTING: "yellow",
}


def print_status(console: Console, status: ServiceStatus) -> None:
    """One row per partition: node, actor state, aggregates, offsets, lag, restarts."""
    nodes = status.nodes
    drained = [row.partition for row in status.rows if row.drained]
    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        title=(
            f"eventledger · {status.app_id} · {status.partitions} partitions · "
            f"{len(nodes)} Ray node{'s' if len(nodes) != 1 else ''}"
            + (
                f" · routing v{status.routing_version} of {status.slots} slots"
                if status.routing_version is not None
                else ""
            )
            + (f" · {len(drained)} drained" if drained else "")
        ),
    )
    for name, justify in (
        ("part", "right"),
        ("node", "left"),
        ("state", "left"),
        ("gen", "right"),
        ("aggregates", "right"),
        ("committed\noffset", "right"),
        ("lag", "right"),
        ("restarts", "right"),
        ("last\ncommit", "right"),
        ("standby\nlag", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    taken_over = any(row.epoch for row in status.rows)  # the writer member is news only then
    if taken_over:
        table.add_column("writer\n@epoch", justify="right", no_wrap=True)
    slotted = status.routing_version is not None
    if slotted:
        table.add_column("slots", justify="right", no_wrap=True)
    for row in status.rows:
        state = str(row.state)
        style = _STATE_STYLE.get(row.state, "red")
        shadow = row.rebuild.shadow if row.rebuild is not None else None
        if row.state is RowState.REBUILDING and shadow is not None and shadow.end:
            state = f"{state} {100 * shadow.position / max(1, shadow.end):.0f}%"
        table.add_row(
            str(row.partition),
            (row.node or "-")[:8],
            f"[{style}]{state}[/]",
            str(row.generation),
            _num(row.aggregates),
            _num(row.committed_offset),
            _num(row.lag),
            str(row.restarts),
            _age(row.last_commit_age),
            _standbys(row.standby_lags),
            *([f"{row.writer}@{row.epoch}"] if taken_over else []),
            *([_slots(row)] if slotted else []),
        )
    console.print(table)
    line = repartition_line(status.repartition)
    if line:
        console.print(line)
    for name, error in sorted(status.errors.items()):
        console.print(f"[red]coordinator step {name}:[/] {error}")
    for row in status.rows:
        if row.error:
            console.print(f"[red]partition {row.partition}:[/] {row.error}")


def _slots(row: StatusRow) -> str:
    """The slots the table gives a partition, or "drained" for a drained one."""
    return "[dim]drained[/]" if row.drained else _num(row.slots)


def _standbys(lags: dict[int, int | None]) -> str:
    """Each standby's lag in commits behind its writer ("?": it did not report)."""
    return " ".join("?" if lag is None else str(lag) for _, lag in sorted(lags.items())) or "-"


def not_running(status: ServiceStatus) -> list[int]:
    """The partitions that do not take commands now (``status``'s probe fails on any)."""
    return [row.partition for row in status.rows if not row.state.takes_commands]


def json_rows(status: ServiceStatus) -> list[str]:
    """One JSON object per partition: the row's fields, with the application id."""
    return [
        msgspec.json.encode({"app_id": status.app_id, **msgspec.to_builtins(row)}).decode()
        for row in status.rows
    ]


def print_rebuilds(console: Console, rebuilds: dict[int, RebuildProgress]) -> None:
    """One row per rebuilt partition: generation, events replayed, rate, pause."""
    table = Table(title="rebuild", box=box.SIMPLE_HEAD)
    for name in ("partition", "generation", "phase", "events", "replay", "events/s", "pause"):
        table.add_column(name, justify="left" if name == "phase" else "right")
    for p, progress in sorted(rebuilds.items()):
        r = progress.record
        failed = r.error and r.phase is not RebuildPhase.DONE
        table.add_row(
            str(p),
            str(r.generation),
            r.phase + (f" ({r.error})" if failed else ""),
            f"{r.events:,}",
            f"{r.replay_seconds:.2f} s",
            f"{r.rate:,.0f}",
            f"{r.pause_ms:.0f} ms" if r.pause_ms else "-",
        )
    console.print(table)


def repartition_line(record: RepartitionRecord | None) -> str | None:
    """One line on a repartition under way or failed (None: none, or done)."""
    if record is None or record.phase is RepartitionPhase.DONE:
        return None
    style = "red" if record.phase is RepartitionPhase.FAILED else "cyan"
    line = (
        f"[{style}]repartition {record.from_partitions} → {record.to_partitions}:[/] "
        f"{record.phase}, {record.done()}/{len(record.moves)} moves published"
    )
    return line + (f" ({record.error})" if record.error else "")


def _seconds(start: float, end: float) -> str:
    return f"{end - start:.2f} s" if start and end else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def print_moves(console: Console, record: RepartitionRecord) -> None:
    """One row per move: its slots, version and state; how long after its request it was
    handed off, after that installed, after that published; the legs' pauses."""
    title = f"repartition {record.from_partitions} → {record.to_partitions} · {record.phase}"
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for name in ("move", "from", "to", "slots", "version", "state", "handoff", "install"):
        table.add_column(name, justify="left" if name in ("move", "state") else "right")
    for name in ("publish", "handoff pause", "install pause"):
        table.add_column(name, justify="right")
    for m in record.moves:
        table.add_row(
            m.move_id,
            str(m.source),
            str(m.target),
            str(len(m.slots)),
            str(m.version or "-"),
            str(m.state),
            _seconds(m.requested_at, m.handed_off_at),
            _seconds(m.handed_off_at, m.installed_at),
            _seconds(m.installed_at, m.published_at),
            _ms(m.handoff_pause_ms),
            _ms(m.install_pause_ms),
        )
    console.print(table)
    if record.error:
        console.print(f"[red]failed:[/] {record.error}")
