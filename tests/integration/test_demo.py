"""The main job end to end at a small size: the demo's three-way money check holds (with
its transfers of every kind and its deposits through the HTTP API), every command got a
reply, and its table renders."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from eventledger.demo import run_demo
from eventledger.report import print_demo


def test_the_demo_conserves_money(
    bootstrap: str, ray_local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)  # the session broker
    report = run_demo(accounts=60, commands=600, partitions=2, window=32, http_deposits=200)
    assert report.sent == 660
    assert report.accepted + sum(report.rejected.values()) == report.sent
    assert report.rejected["insufficient_funds"] > 0  # the workload does refuse some
    assert report.money_ok, report
    assert report.actor_total == report.expected_total == report.events_total
    assert report.actor_accounts == report.event_accounts == 61  # + the tour's closed one
    assert (report.in_flight, report.broken_transfers) == (0, 0)
    t = report.transfers
    assert t["same partition: accepted"] > 0 and t["cross partition: accepted"] > 0
    assert t["to an unknown account: rejected: unknown_account"] == 1
    assert t["to a closed account: rejected: account_closed"] == 1
    assert t["pending: accepted"] == 3
    assert t["pending then posted: accepted"] == t["pending then voided: accepted"] == 1
    assert t["pending then expired: rejected: pending_expired"] == 1
    http = report.http
    assert http is not None and http.sent == 200
    assert http.accepted + sum(http.refused.values()) == 200
    assert http.accepted > 0 and http.moved > 0  # counted in expected_total, checked above
    out = io.StringIO()
    print_demo(Console(file=out, width=120), report)
    assert "money conserved" in out.getvalue()
    assert "HTTP ÷ Python client" in out.getvalue()
