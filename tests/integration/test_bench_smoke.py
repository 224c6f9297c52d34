"""The benchmark harness end to end at ``--quick`` size, on the session's broker and Ray.

Correctness only: every system's output passes its checks; no timing is asserted. Both are in
the ``slow`` group (minutes each on 2 cores: a benchmark's own check, not part of ``make
test``). The first covers eventledger, Kafka Streams (its jar is built with Maven on first
use, then cached under ~/.cache/eventledger/) and the raw pipe, in every phase (e2e with its
raw echo too; history, failover, repartition and http, each serving mode in a Ray of its
own, for eventledger alone); Quix Streams needs its own virtualenv (built on first use, tens of
seconds), so the second covers it.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.config import QUICK, Phase, SystemName
from bench.run import LATEST_MD, run_bench

pytestmark = pytest.mark.timeout(1800)  # every phase at quick size: about 10 minutes on 2 cores


def _run(
    bootstrap: str,
    out: Path,
    systems: tuple[SystemName, ...],
    phases: tuple[Phase, ...] = tuple(Phase),
) -> dict[str, Any]:
    config = replace(QUICK, bootstrap=bootstrap, out=out, systems=systems, phases=phases)
    latest_before = LATEST_MD.stat().st_mtime if LATEST_MD.exists() else None
    document = run_bench(config, Console(file=io.StringIO(), width=160))
    assert document["passed"], document["failures"]
    assert json.loads(out.read_text())["run_id"] == document["run_id"]
    latest_after = LATEST_MD.stat().st_mtime if LATEST_MD.exists() else None
    assert latest_after == latest_before, "a quick run must not replace latest.md"
    return document


@pytest.mark.slow
def test_quick_bench_eventledger_kafka_streams_and_raw_pipe(
    bootstrap: str, ray_local: None, tmp_path: Path
) -> None:
    document = _run(
        bootstrap,
        tmp_path / "quick.json",
        (SystemName.EVENTLEDGER, SystemName.KSTREAMS, SystemName.RAWPIPE),
    )
    expected = document["expected"]
    assert expected["records"] == QUICK.accounts + QUICK.commands
    assert expected["rejected"], "the workload refuses some commands"
    ledger = document["throughput"]["eventledger"]
    assert ledger["check"]["passed"]
    facts = ledger["check"]["facts"]
    assert facts["commands answered"] == expected["records"]
    assert facts["Σ balances (folded events)"] == expected["money"]
    assert facts["Σ balances (actors' views)"] == expected["money"]
    assert document["throughput"]["rawpipe"]["check"]["passed"]
    latency = document["latency"]
    assert latency["answered"] == latency["sent"] == round(QUICK.rate * QUICK.duration)
    restore = document["restore"]["eventledger"]
    assert restore["records"] == restore["facts"]["aggregates"] == QUICK.restore_keys
    kstreams = document["throughput"]["kstreams"]["check"]
    assert kstreams["passed"]
    assert kstreams["facts"]["accounts whose balance differs from eventledger's"] == 0
    peer = document["peer_latency"]["kstreams"]
    assert peer["answered"] == peer["sent"] == round(QUICK.rate * QUICK.duration)
    e2e = document["e2e"]
    settings = {(c, w) for c, w in QUICK.e2e_settings}
    for system in ("eventledger", "echo", "kstreams"):
        runs = [r for r in e2e if r["system"] == system]
        assert {(r["clients"], r["window"]) for r in runs} == settings
        for r in runs:
            assert r["answered"] == r["commands"] == QUICK.e2e_commands
            assert r["check"]["passed"], r["check"]
    history = document["history"]  # its queries checked their answers; no timing asserted
    assert history["long"] == QUICK.history_events and history["short"] == 100
    assert len(history["p50_ms"]) == len(history["ratios"]) == 4
    failover = document["failover"]  # every deposit checked in its balance; no timing asserted
    assert failover["keys"] == QUICK.failover_keys and failover["gap_ratio"] > 0
    assert [r["standbys"] for r in failover["runs"]] == [0, 1]
    for run in failover["runs"]:
        assert run["gap_seconds"] > 0
        assert run["facts"]["deposits sent (all answered, accepted)"] > 0
    restart, takeover = failover["runs"]
    assert restart["facts"]["restored records (snapshots) of the writer after the kill"] >= (
        QUICK.failover_keys
    )
    assert takeover["facts"]["writer member after the kill"] == 1 and takeover["steps_ms"]
    http = document["http"]  # each mode's money checked in its own Ray; no timing asserted
    assert set(http["modes"]) == set(QUICK.http_modes) and http["echo_rate"] > 0
    for mode in http["modes"].values():
        assert mode["money_ok"] and mode["figures"]["post_rate"] > 0
    _check_repartition(document)
    assert {r["system"] for r in document["rows"]} == {
        "eventledger", "kstreams", "rawpipe", "echo", *(f"http {m}" for m in QUICK.http_modes)
    }  # fmt: skip


def _check_repartition(document: dict[str, Any]) -> None:
    """Every account held once and money conserved were checked by the phase; no timing
    asserted."""
    r = document["repartition"]
    assert (r["from_partitions"], r["to_partitions"]) == (4, 8) and r["moves"] > 0
    assert 0 < r["accounts_moved"] < QUICK.repartition_keys
    assert r["facts"]["accounts held (Σ over partitions)"] == QUICK.repartition_keys
    assert r["facts"]["deposits sent (all answered, accepted)"] > 0
    assert r["peer"].startswith("cannot online")


@pytest.mark.slow
def test_quick_bench_repartition_alone(bootstrap: str, ray_local: None, tmp_path: Path) -> None:
    document = _run(
        bootstrap,
        tmp_path / "quick-repartition.json",
        (SystemName.EVENTLEDGER,),
        (Phase.REPARTITION,),
    )
    _check_repartition(document)
    assert document["throughput"] == {} and document["failover"] is None


@pytest.mark.slow
def test_quick_bench_with_quix_streams(bootstrap: str, ray_local: None, tmp_path: Path) -> None:
    document = _run(bootstrap, tmp_path / "quick-all.json", tuple(SystemName))
    quix = document["throughput"]["quix"]
    assert quix["check"]["passed"]
    assert quix["check"]["facts"]["accounts whose balance differs from eventledger's"] == 0
    assert document["restore"]["quix"]["records"] >= QUICK.restore_keys
    assert document["throughput"]["kstreams"]["check"]["passed"]
