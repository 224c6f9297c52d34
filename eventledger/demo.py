"""The main job: the service on a real broker and local Ray, driven by a demo workload.

Deploys through the coordinator (``eventledger serve``'s path) and stops the service at the
end, unless asked to keep it for ``eventledger status`` and ``eventledger rebuild``. Opens
accounts, sends random deposits and withdrawals (some rejected) with a bounded number
in flight, measures each round trip, sends transfers (same and cross partition, refused,
pending then posted, voided or expired), waits until no transfer is in flight, then checks
that money is conserved three ways: the actors' balances = accepted deposits − withdrawals
= the fold of the committed events, with every transfer debited once and credited or
reversed once (``ledger.money``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress

from actors import tracing
from actors.audit import fold_events, read_events
from actors.deployment import stop_service
from actors.ray_state import partition_actor
from eventledger.assembly import AGGREGATE, deploy_service
from eventledger.bank import BankClient
from eventledger.demo_http import HttpLeg, run_http_leg
from eventledger.runtime import ensure_broker, ensure_ray
from eventledger.service import connect_ray
from eventledger.transfer_tour import tour
from eventledger.workload import Workload, money_moved
from ledger.money import Money
from topology.envelopes import Reply
from topology.names import NAMESPACE
from topology.settings import Settings

__all__ = ["DemoReport", "run_demo"]

log = logging.getLogger(__name__)


@dataclass
class DemoReport:
    app_id: str
    bootstrap: str
    partitions: int
    sent: int = 0
    moves: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    expected_total: int = 0
    actor_total: int = 0
    events_total: int = 0
    actor_accounts: int = 0
    event_accounts: int = 0
    mismatched_accounts: int = 0
    kept: bool = False
    window: int = 0
    transfers: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    broken_transfers: int = 0
    http: HttpLeg | None = None

    @property
    def throughput(self) -> float:
        return self.moves / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def money_ok(self) -> bool:
        return (
            self.actor_total == self.expected_total == self.events_total
            and self.mismatched_accounts == 0
            and self.actor_accounts == self.event_accounts
            and self.in_flight == 0
            and self.broken_transfers == 0
        )


def _drive(
    client: BankClient,
    *,
    commands: Iterable[tuple[str, Any]],
    total: int,
    window: int,
    report: DemoReport,
    progress: Progress,
    label: str,
) -> None:
    """Send with at most ``window`` commands in flight; record outcome and round trip."""
    slots = threading.Semaphore(window)
    lock = threading.Lock()
    task = progress.add_task(label, total=total)

    def done(future: Future[Reply], command: Any, sent_at: float) -> None:
        elapsed = (time.perf_counter() - sent_at) * 1000.0
        slots.release()
        reply = future.result()
        with lock:
            report.latencies_ms.append(elapsed)
            if reply.accepted:
                report.accepted += 1
                report.expected_total += money_moved(command)
            else:
                report.rejected[reply.code or "?"] += 1
        progress.advance(task)

    pending: list[Future[Reply]] = []
    for aggregate_id, command in commands:
        slots.acquire()
        sent_at = time.perf_counter()
        future = client.send(aggregate_id, command)
        future.add_done_callback(functools.partial(done, command=command, sent_at=sent_at))
        pending.append(future)
        report.sent += 1
    for future in pending:
        future.result(timeout=120)


def run_demo(
    *,
    accounts: int = 2_000,
    commands: int = 20_000,
    partitions: int = 4,
    window: int = 256,
    seed: int = 7,
    keep: bool = False,
    http_deposits: int = 2_000,
    progress: Progress | None = None,
) -> DemoReport:
    """Run the demo end to end in a fresh application and return what happened. With
    ``keep`` the service stays deployed (on a Ray head that outlives this process).
    ``http_deposits`` more deposits go through the HTTP API (none: 0)."""
    tracing.configure_telemetry("eventledger-demo")  # the client's side of each trace
    bootstrap = ensure_broker()
    if keep:
        connect_ray(start_local=True)
    else:
        ensure_ray(NAMESPACE)
    import ray

    settings = Settings.resolve(
        app_id=f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}",
        bootstrap_servers=bootstrap,
        partitions=partitions,
    )
    report = DemoReport(settings.app_id, bootstrap, partitions, kept=keep, window=window)
    workload = Workload(accounts=accounts, commands=commands, seed=seed)
    progress = progress or Progress(transient=True)
    try:
        deploy_service(settings)
        with BankClient(settings) as client, progress:
            _drive(
                client,
                commands=workload.openings(),
                total=accounts,
                window=window,
                report=report,
                progress=progress,
                label="opening accounts",
            )
            started = time.perf_counter()
            _drive(
                client,
                commands=workload.operations(),
                total=commands,
                window=window,
                report=report,
                progress=progress,
                label="deposits and withdrawals",
            )
            report.seconds = time.perf_counter() - started
            report.moves = commands
            ids = [workload.account_id(i) for i in range(1, accounts)]  # 0 has an overdraft
            report.transfers = tour(client, ids, count=max(10, commands // 10), seed=seed)
        if http_deposits:
            report.http = run_http_leg(settings, ids, deposits=http_deposits, seed=seed)
            report.expected_total += report.http.moved
        money = _quiet(settings)
        report.in_flight = money.in_flight
        report.broken_transfers = len(money.broken_transfers())
        views: dict[str, Any] = {}
        handles = [partition_actor(settings.app_id, p) for p in range(partitions)]
        for part in ray.get([h.views.remote() for h in handles]):
            views.update(part)
        folded = fold_events(settings, AGGREGATE)
    finally:
        tracing.flush()  # the client's spans and metrics; the actors flush as they stop
        if not keep:
            stop_service(settings.app_id)
    report.actor_total = sum(v.balance for v in views.values())
    report.events_total = sum(s.balance for s in folded.values())
    report.actor_accounts = len(views)
    report.event_accounts = len(folded)
    report.mismatched_accounts = sum(
        1 for k, s in folded.items() if k not in views or views[k].balance != s.balance
    )
    report.latencies_ms = report.latencies_ms[accounts:]  # round trips of the money moves
    return report


def _quiet(settings: Settings, timeout: float = 60.0) -> Money:
    """The money fold of the committed events once nothing is in flight (a posted pending
    transfer's credit may land after its reply), or as it stands after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        money = Money()
        money.add(e.event for e in read_events(settings, AGGREGATE))
        if money.in_flight == 0 or time.monotonic() > deadline:
            return money
        time.sleep(0.5)
