"""The e2e phase's bookkeeping, without a broker: how commands are shared among senders, the
expected outcome they are checked against, and the table rows."""

from __future__ import annotations

from collections import Counter

from bench.e2e import expected_of
from bench.e2e_worker import share
from bench.meters import CpuReading, role_of
from bench.model import E2E, Latency, RunResults, Throughput
from bench.report import build_rows
from eventledger.workload import Workload
from ledger.commands import Deposit, OpenAccount, Withdraw


def test_senders_share_every_command_once_and_each_account_has_one_sender() -> None:
    ops = list(Workload(accounts=50, commands=2_000, seed=3).operations())
    shares = [share(50, 2_000, 3, 8, i) for i in range(8)]
    assert sum(len(s) for s in shares) == len(ops)
    owners: dict[str, int] = {}
    for i, s in enumerate(shares):
        for account, _ in s:
            assert owners.setdefault(account, i) == i
        # each sender keeps the workload's order
        mine = [op for op in ops if owners.get(op[0]) == i]
        assert s == mine


def test_expected_outcome_folds_in_order() -> None:
    expected = expected_of(
        [
            ("a", OpenAccount("EUR")),
            ("a", Deposit(100)),
            ("a", Withdraw(150)),
            ("b", Deposit(5)),
            ("a", Withdraw(0)),
            ("a", Withdraw(60)),
        ]
    )
    assert expected.records == 6
    assert expected.accepted == 3
    assert dict(expected.rejected) == {
        "insufficient_funds": 1,
        "unknown_account": 1,
        "amount_not_positive": 1,
    }
    assert expected.balances == {"a": 40}
    assert expected.money == 40


def test_e2e_rows_carry_the_ratios_to_the_echo_and_to_kafka_streams() -> None:
    def run(system: str, rate: int) -> E2E:
        return E2E(system, 1, 256, rate, rate, 1.0, {"p50": 1.0, "p99": 2.0, "p99.9": 3.0}, 0.5)

    results = RunResults(e2e=[run("eventledger", 400), run("echo", 800), run("kstreams", 200)])
    rows = {(r.measure, r.system): r for r in build_rows(results)}
    ours = rows[("e2e 1 client × 256 in flight, commands/s", "eventledger")]
    assert (ours.value, ours.vs_raw, ours.vs_ks) == ("400", "0.50×", "2.00×")
    cpu = rows[("e2e 1 client × 256 in flight, broker CPU per command", "eventledger")]
    assert cpu.value == "1,250 µs"


def test_e2e_goals_hold_our_rate_against_preloaded_echo_and_kafka_streams() -> None:
    def run(system: str, rate: int) -> E2E:
        return E2E(system, 1, 256, rate, rate, 1.0, {"p50": 1.0, "p99": 2.0, "p99.9": 3.0}, None)

    results = RunResults(e2e=[run("eventledger", 400), run("echo", 1_000), run("kstreams", 500)])
    results.throughput["eventledger"] = Throughput(
        system="eventledger", commands=700, first_at=0.0, last_at=1.0
    )
    rows = {(r.measure, r.system): r for r in build_rows(results)}
    goal = rows[("e2e 1 client × 256 in flight, commands/s", "eventledger")].goal
    assert goal == "≥ 0.5× preloaded ✓, ≥ 0.3× echo ✓, > Kafka Streams ✗"


def test_latency_goals_are_ratios_to_the_echo_measured_in_the_same_run() -> None:
    def lat(p50: float, p99: float) -> Latency:
        return Latency(
            rate=1_000, duration=1.0, sent=10, answered=10,
            percentiles_ms={"p50": p50, "p90": p50, "p99": p99, "p99.9": p99},
            max_ms=p99, mean_ms=p50, send_lag_max_ms=0.0,
            from_send_ms={"p50": p50, "p99": p99, "max": p99}, facts={}, config={},
        )  # fmt: skip

    results = RunResults(latency=lat(9.0, 40.0))
    results.peer_latency["echo"] = lat(5.0, 12.0)
    rows = {(r.measure, r.system): r for r in build_rows(results)}
    p50 = rows[("round trip at 1,000/s open loop, p50", "eventledger")]
    p99 = rows[("round trip at 1,000/s open loop, p99", "eventledger")]
    assert (p50.vs_raw, p50.goal) == ("1.80×", "≤ 5 ms ✗, ≤ 2× echo ✓")
    assert (p99.vs_raw, p99.goal) == ("3.33×", "≤ 25 ms ✗, ≤ 3× echo ✗")
    assert rows[("round trip at 1,000/s open loop, p50", "echo")].value == "5.0 ms"


def test_roles_are_read_from_command_lines() -> None:
    assert role_of(["java", "-Xmx512m", "-cp", "x", "kafka.Kafka", "server.properties"]) == "broker"
    assert role_of(["ray::PartitionWorker.run"]) == "actor PartitionWorker"
    assert role_of(["ray::IDLE"]) == "ray"
    assert role_of(["/v/bin/python", "-m", "bench.e2e_worker", "{}"]) == "senders"
    assert role_of(["/usr/bin/bash"]) == "other"


def test_cpu_readings_subtract_by_role_and_drop_what_did_not_grow() -> None:
    before = CpuReading(Counter({"broker": 10.0, "ray": 2.0}), busy=50.0, total=100.0)
    after = CpuReading(Counter({"broker": 12.5, "ray": 2.0, "echo": 1.0}), busy=60.0, total=120.0)
    spent = after - before
    assert spent.by_role == Counter({"broker": 2.5, "echo": 1.0})
    assert (spent.busy, spent.total) == (10.0, 20.0)
