"""The per-principal rate limit (pure, on a given clock) and the replica's bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventledger.http.limits import Limits, RateLimiter


def test_a_burst_passes_then_the_rate_holds() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    assert [limiter.take("a", 0.0) for _ in range(5)] == [None] * 5
    assert limiter.take("a", 0.0) == 1
    assert limiter.take("b", 0.0) is None  # another principal has its own bucket
    assert limiter.take("a", 0.1) is None  # one refilled after 1/rate
    assert limiter.take("a", 0.1) == 1


def test_retry_after_is_the_whole_seconds_until_a_request_fits() -> None:
    limiter = RateLimiter(rate=0.25, burst=1)
    assert limiter.take("a", 0.0) is None
    assert limiter.take("a", 0.0) == 4
    assert limiter.take("a", 3.9) == 1
    assert limiter.take("a", 4.0) is None


def test_idle_principals_are_forgotten() -> None:
    limiter = RateLimiter(rate=1, burst=2)
    for n in range(100):
        limiter.take(f"p{n}", 0.0)
    limiter.take("late", 10.0)
    assert set(limiter._buckets) == {"late"}


@given(st.lists(st.floats(0, 0.5), max_size=200))
def test_never_more_than_the_burst_plus_the_rate_over_time(gaps: list[float]) -> None:
    limiter, now, passed = RateLimiter(rate=4, burst=3), 0.0, 0
    for gap in gaps:
        now += gap
        passed += limiter.take("a", now) is None
    assert passed <= 3 + 4 * now + 1e-9


def test_a_limit_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)


def test_a_post_waits_for_its_command_and_anything_else_for_its_read_plus_the_margin() -> None:
    limits = Limits(read_timeout_s=4, margin_s=1)
    assert limits.deadline_s("POST", command_timeout_s=10) == 11
    assert limits.deadline_s("GET", command_timeout_s=10) == 5
    assert limits.deadline_s("DELETE", command_timeout_s=10) == 5


@pytest.mark.parametrize(
    "bad",
    [
        {"read_timeout_s": 0},
        {"margin_s": -1},
        {"rate_per_token": 0},
        {"max_ongoing": 0},
        {"max_queued": 0},
        {"burst_per_token": 0},
        {"blocking_threads": 0},
        {"queue_retry_after_s": -1},
    ],
)
def test_limits_refuse_what_would_bound_nothing(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limits(**bad)  # type: ignore[arg-type]
