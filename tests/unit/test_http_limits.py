"""The per-principal rate limit (pure, on a given clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventledger.http.limits import RateLimiter


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
