"""The e2e phase's bookkeeping, without a broker: how commands are shared among senders, the
expected outcome they are checked against, and the table rows."""

from __future__ import annotations

from bench.e2e import expected_of
from bench.e2e_worker import share
from bench.model import E2E, RunResults
from bench.report import build_rows
from eventledger.ledger.commands import Deposit, OpenAccount, Withdraw
from eventledger.workload import Workload


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
