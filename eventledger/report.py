"""Rich tables for what the CLI prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from eventledger.demo import DemoReport

__all__ = ["print_demo"]


def print_demo(console: Console, r: DemoReport) -> None:
    table = Table(title=f"eventledger demo · {r.app_id} · {r.partitions} partitions")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("commands sent (opens + moves)", f"{r.sent:,}")
    table.add_row("accepted", f"{r.accepted:,}")
    for code, n in sorted(r.rejected.items()):
        table.add_row(f"rejected: {code}", f"{n:,}")
    table.add_row("moves/s (end to end, round trips awaited)", f"{r.throughput:,.0f}")
    table.add_row("round trip p50", f"{r.percentile(0.50):.1f} ms")
    table.add_row("round trip p99", f"{r.percentile(0.99):.1f} ms")
    table.add_section()
    table.add_row("Σ accepted deposits − withdrawals", f"{r.expected_total:,}")
    table.add_row("Σ balances held by the actors", f"{r.actor_total:,}")
    table.add_row("Σ balances folded from the events topic", f"{r.events_total:,}")
    table.add_row("accounts (actors / events)", f"{r.actor_accounts:,} / {r.event_accounts:,}")
    table.add_row("accounts whose balance differs", f"{r.mismatched_accounts:,}")
    verdict = "[bold green]money conserved[/]" if r.money_ok else "[bold red]MISMATCH[/]"
    table.add_row("money check", verdict)
    console.print(table)
