"""The e2e phase: the user's path, closed loop. Sender processes (one per client: processes,
not threads, so the senders do not share a GIL) each keep ``window`` commands in flight
through a client and await every reply; per (clients, window) setting the phase reports
throughput (answered / first send → last reply), round trips (p50 / p99 / p99.9, from the
send call), and per command the broker's CPU and requests by type (``bench.meters``).

Systems: eventledger (``LedgerClient``), Kafka Streams (``LedgerClient``'s request/reply
channel, ``bench.peers``) and the raw echo (the limit: a process echoes each command's bytes
back as its reply; no transactions, no state). Every ledger system's replies and events are
checked afterwards as the throughput phase checks them (one reply per command, outcomes and
balances as the domain's fold of what was sent, money conserved); the echo's reply count.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from bench.check import Check, check_counts, check_ledger_output
from bench.latency import percentile
from bench.meters import BrokerMeter, CpuMeter, CpuReading
from bench.model import E2E, RunContext
from bench.procs import Worker
from bench.workload import Expected
from eventledger.workload import Workload

__all__ = ["expected_of", "run_e2e"]

log = logging.getLogger(__name__)


def expected_of(commands: Iterable[tuple[str, Any]]) -> Expected:
    """What a correct ledger makes of ``commands`` applied in this order."""
    expected = Expected()
    states: dict[str, Any] = {}
    for account, command in commands:
        expected.records += 1
        expected.decide(states, account, command)
    expected.balances = {k: s.balance for k, s in states.items()}
    return expected


def _setting_seed(ctx: RunContext, k: int) -> int:
    return ctx.config.seed + 100 + k


def _sent_in_order(ctx: RunContext) -> list[tuple[str, Any]]:
    """Openings, then each setting's commands: per account, the order they were sent in."""
    cfg = ctx.config
    sent: list[tuple[str, Any]] = list(Workload(accounts=cfg.accounts, seed=cfg.seed).openings())
    for k, _ in enumerate(cfg.e2e_settings):
        sent += Workload(
            accounts=cfg.accounts, commands=cfg.e2e_commands, seed=_setting_seed(ctx, k)
        ).operations()
    return sent


@functools.cache
def _broker_meter(bootstrap: str) -> BrokerMeter:
    """One meter per broker for the whole run: finding the broker's process (a scan of every
    process's sockets) and its jar are done once, not once per setting."""
    return BrokerMeter(bootstrap)


def run_setting(
    ctx: RunContext, system: str, mode: str, app_id: str, *, k: int, clients: int, window: int,
    reply_lanes: int = 1,
) -> E2E:  # fmt: skip
    """One (clients, window) setting against a running system."""
    cfg = ctx.config
    broker = _broker_meter(ctx.bootstrap)
    machine = CpuMeter()
    workers = [
        Worker(
            f"e2e-{system}-{clients}x{window}-{i}",
            sys.executable,
            "bench.e2e_worker",
            {
                "mode": mode,
                "bootstrap": ctx.bootstrap,
                "app_id": app_id,
                "partitions": cfg.partitions,
                "reply_lanes": reply_lanes,
                "lane": i % reply_lanes,
                "window": window,
                "accounts": cfg.accounts,
                "commands": cfg.e2e_commands,
                "seed": _setting_seed(ctx, k),
                "clients": clients,
                "index": i,
            },
            ctx.log_dir,
        )
        for i in range(clients)
    ]
    label = f"e2e {system}: {clients} × {window} in flight"
    try:
        for w in workers:
            w.wait_for("ready", 180)
        before, cpu_before = broker.read(), machine.read()
        for w in workers:
            w.go()
        task = ctx.progress.add_task(label, total=clients)
        reports = []
        for w in workers:
            reports.append(w.finish(600))
            ctx.progress.advance(task)
        paid, cpu = broker.read() - before, machine.read() - cpu_before
    finally:
        for w in workers:
            w.kill()
    latencies = sorted(x for r in reports for x in r["latencies_ms"])
    outcomes: Counter[str] = Counter()
    for r in reports:
        outcomes.update(r["outcomes"])
    sent = sum(r["sent"] for r in reports)
    answered = sum(r["answered"] for r in reports)
    seconds = max(r["last_at"] for r in reports) - min(r["first_at"] for r in reports)
    return E2E(
        system=system,
        clients=clients,
        window=window,
        commands=sent,
        answered=answered,
        seconds=seconds,
        percentiles_ms={
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "p99.9": percentile(latencies, 0.999),
            "max": latencies[-1] if latencies else 0.0,
        },
        broker_cpu_seconds=paid.cpu_seconds,
        broker_requests=None if paid.requests is None else dict(paid.requests.most_common()),
        cpu_us_per_command=_cpu_per_command(cpu, reports, answered),
        machine_busy=cpu.busy / cpu.total if cpu.total else None,
        config={"senders": f"{clients} processes", "window per sender": window},
        facts={"outcomes": dict(sorted(outcomes.items()))},
    )


def _cpu_per_command(
    cpu: CpuReading, reports: list[dict[str, Any]], answered: int
) -> dict[str, float]:
    """µs of CPU per answered command by role, largest first; the senders' from their own
    reports (they exit before the second reading)."""
    by_role = Counter(cpu.by_role)
    by_role.pop("senders", None)
    by_role["senders"] = sum(r["cpu_seconds"] for r in reports)
    if not answered:
        return {}
    return {role: round(s / answered * 1e6, 1) for role, s in by_role.most_common() if s > 0}


def _problems(results: list[E2E], check: Check) -> None:
    for r in results:
        check.expect(f"{r.clients}×{r.window}: answered", r.answered, r.commands)


def run_e2e(
    ctx: RunContext, systems: list[str], guard: Callable[[str, Callable[[], None]], None]
) -> list[E2E]:
    """Every given system (``eventledger``, ``echo``, ``kstreams``) at every setting."""
    out: list[E2E] = []
    for system in systems:
        ctx.progress.console.rule(f"e2e: {system}")

        def attempt(system: str = system) -> None:
            runner = {"eventledger": _eventledger, "echo": _echo, "kstreams": _kstreams}[system]
            results, check = runner(ctx)
            out.extend(results)
            for r in results:
                r.check = check.summary()
            check.raise_if_failed()

        guard(f"e2e:{system}", attempt)
    return out


def _settings(
    ctx: RunContext, system: str, mode: str, app_id: str, reply_lanes: int = 1
) -> list[E2E]:
    return [
        run_setting(
            ctx,
            system,
            mode,
            app_id,
            k=k,
            clients=clients,
            window=window,
            reply_lanes=reply_lanes,
        )
        for k, (clients, window) in enumerate(ctx.config.e2e_settings)
    ]


def _eventledger(ctx: RunContext) -> tuple[list[E2E], Check]:
    from actors.client import LedgerClient
    from actors.deployment import stop_service
    from bench.latency import open_accounts
    from bench.systems.eventledger import settings_config
    from eventledger.assembly import deploy_service
    from topology.settings import Settings
    from topology.topics import TopicKind, TopicLayout

    cfg = ctx.config
    settings = Settings.resolve(
        app_id=f"{ctx.prefix}-e2e", bootstrap_servers=ctx.bootstrap, partitions=cfg.partitions
    )
    deploy_service(settings, timeout=300)
    try:
        with LedgerClient(settings, timeout=60) as client:
            open_accounts(ctx, client, Workload(accounts=cfg.accounts, seed=cfg.seed))
        results = _settings(ctx, "eventledger", "ledger", settings.app_id, settings.reply_lanes)
    finally:
        stop_service(settings.app_id)
    layout = TopicLayout.of(settings)
    for r in results:
        r.config.update(settings_config(settings))
        r.config["client"] = "LedgerClient per sender process (reply lane = index mod lanes)"
    check = check_ledger_output(
        ctx.bootstrap, "eventledger e2e", replies=layout.name(TopicKind.REPLIES),
        events=layout.name(TopicKind.EVENTS), partitions=cfg.partitions,
        expected=expected_of(_sent_in_order(ctx)), reply_lanes=settings.reply_lanes,
    )  # fmt: skip
    _problems(results, check)
    return results, check


def _kstreams(ctx: RunContext) -> tuple[list[E2E], Check]:
    from bench.latency import open_accounts
    from bench.peers import peer_channel
    from bench.systems.kstreams import KStreamsApp

    cfg = ctx.config
    app = KStreamsApp(ctx, "e2e", cfg.partitions)
    try:
        app.wait_settled()
        with peer_channel(ctx.bootstrap, app.app_id, cfg.partitions) as client:
            open_accounts(ctx, client, Workload(accounts=cfg.accounts, seed=cfg.seed))
        results = _settings(ctx, "kstreams", "reply", app.app_id)
        app.stop()
    finally:
        app.kill()
    for r in results:
        r.config.update(KStreamsApp.config())
        r.config["client"] = "ReplyChannel per sender process (LedgerClient's channel)"
    check = check_ledger_output(
        ctx.bootstrap, "kstreams e2e", replies=app.replies, events=app.events,
        partitions=cfg.partitions, expected=expected_of(_sent_in_order(ctx)),
    )  # fmt: skip
    _problems(results, check)
    return results, check


def _echo(ctx: RunContext) -> tuple[list[E2E], Check]:
    from bench.systems.echo import CONFIG, running_echo
    from topology.topics import TopicKind, TopicLayout

    cfg = ctx.config
    with running_echo(ctx, "echo") as (app_id, report):
        results = _settings(ctx, "echo", "echo", app_id)
    total = len(cfg.e2e_settings) * cfg.e2e_commands
    for r in results:
        r.config.update(
            {"echo": CONFIG,
             "client": "ReplyChannel per sender process (LedgerClient's channel)"}
        )  # fmt: skip
    check = check_counts(
        ctx.bootstrap, "echo e2e", cfg.partitions,
        {"replies": (TopicLayout(app_id, cfg.partitions).name(TopicKind.REPLIES), total)},
    )  # fmt: skip
    check.expect("commands echoed", report["processed"], total)
    _problems(results, check)
    return results, check
