"""The http phase's ratios and rows from recorded figures (pure)."""

from __future__ import annotations

import pytest

from bench.model import HttpServing, RunResults
from bench.report import build_rows

FIGURES = {
    "client_rate": 1000.0, "post_rate": 600.0, "get_rate": 1200.0,
    "client_alone_rate": 900.0, "client_beside_gets_rate": 855.0,
    "client_beside_gets_get_rate": 349.0, "client_beside_gets_get_not_ok": 0,
    "client_beside_closed_gets_rate": 450.0, "client_beside_closed_gets_get_rate": 1500.0,
    "client_beside_closed_gets_get_not_ok": 2,
    "client_open_p50_ms": 4.0, "client_open_p99_ms": 9.0,
    "post_open_p50_ms": 8.0, "post_open_p99_ms": 20.0,
}  # fmt: skip


def _http(echo: float | None) -> HttpServing:
    h = HttpServing(
        inflight=64, seconds=10, rate=150, open_seconds=10, get_rate=350, replicas=1, partitions=4,
        accounts=1000, echo_rate=echo,
    )  # fmt: skip
    h.modes["uvicorn"] = {"figures": FIGURES}
    return h


def test_the_ratios_are_within_the_modes_own_run_and_against_the_echo() -> None:
    r = _http(800.0).ratios("uvicorn")
    assert r["post_vs_client"] == pytest.approx(0.6)
    assert r["post_vs_echo"] == pytest.approx(0.75)
    assert r["get_vs_client"] == pytest.approx(1.2)
    assert r["client_beside_gets"] == pytest.approx(0.95)  # against the client alone
    assert r["client_beside_closed_gets"] == pytest.approx(0.5)
    assert r["p50_minus_client_ms"] == pytest.approx(4.0)
    assert "post_vs_echo" not in _http(None).ratios("uvicorn")  # the echo failed


def test_each_mode_has_its_rows_with_goals_and_a_failed_mode_says_so() -> None:
    results = RunResults(http=_http(800.0), failures={"http:direct": "it broke"})
    rows = [r for r in build_rows(results) if r.measure.startswith("http")]
    values = {(r.system, r.measure.split(" (")[0]): (r.value, r.goal) for r in rows}
    assert values[("http uvicorn", "http: POST ÷ client e2e")] == (
        "0.60×",
        "≥ 0.5 ✓, ≥ 0.5× echo ✓",
    )
    assert values[("http uvicorn", "http: GET ÷ client command e2e")] == ("1.20×", "≥ 1 ✓")
    beside = "http: client commands beside 350 GETs/s"
    assert values[("http uvicorn", beside)] == ("0.95×", "≥ 0.9 ✓")
    closed = "http: client commands beside a closed loop of GETs"
    assert values[("http uvicorn", closed)] == ("0.50×", "(not a goal: unbounded reads)")
    assert values[("eventledger", "http")] == ("FAILED", "")
    assert results.http is not None and "ratios" in results.http.to_json()
