"""The transfer bench at a tiny size: every kind measured, money conserved, table renders."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bench.transfers import print_transfer_bench, run_transfer_bench


@pytest.mark.slow  # a minute on a shared machine; `pytest -m slow` runs it
def test_the_transfer_bench_measures_and_conserves_money(
    bootstrap: str, ray_local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)  # the session broker
    result = run_transfer_bench(
        partitions=2, per_partition=5, count=200, window=32, rate=100.0, seconds=1.0
    )
    assert result.money_ok, result
    deposits_of_one = 200 + 100 + 100  # closed loop, open-loop warm-up, open loop
    assert result.balances == result.deposited == 10 * 10**12 + deposits_of_one
    kinds = ("deposit", "same partition", "cross partition")
    assert all(result.throughput[k] > 0 for k in kinds)
    assert all(result.round_trip[k]["answered"] == result.round_trip[k]["sent"] for k in kinds)
    out = io.StringIO()
    print_transfer_bench(Console(file=out, width=120), result)
    assert "money conserved" in out.getvalue()
