"""The HTTP API's bounds on a replica (``Limits``) and its per-principal request rates
(``RateLimiter``: a token bucket for each token name).

A bucket holds at most ``burst`` requests and refills at ``rate`` per second; a request takes
one or is refused with the seconds until one is there (the ``Retry-After`` of a 429). Buckets
of principals idle long enough to be full again are dropped, so memory is bounded by the
principals active in the last ``burst / rate`` seconds. Not thread-safe: one per event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Limits", "RateLimiter"]


@dataclass(frozen=True)
class Limits:
    """What one replica takes on, and for how long.

    - ``max_ongoing`` requests at a time, ``max_queued`` more waiting (in Serve, or in a
      uvicorn worker's ``Admission``); beyond, 503 with ``Retry-After: queue_retry_after_s``;
    - ``rate_per_token`` requests a second per token name, bursts of ``burst_per_token``;
      beyond, 429 ``rate_limited`` with ``Retry-After``;
    - every request has a deadline (``deadline_s``): a POST its command's timeout (how long a
      command waits for its reply) plus ``margin_s`` (reading the body, sending), any other
      request ``read_timeout_s`` (each read is asked with that timeout) plus ``margin_s``;
    - blocking calls (Ray reads, Kafka scans) run on at most ``blocking_threads`` threads.
    """

    read_timeout_s: float = 10.0
    margin_s: float = 2.0
    max_ongoing: int = 256
    max_queued: int = 1024
    queue_retry_after_s: int = 1
    rate_per_token: float = 1000.0
    burst_per_token: int = 2000
    blocking_threads: int = 32

    def __post_init__(self) -> None:
        if min(self.read_timeout_s, self.margin_s, self.rate_per_token) <= 0:
            raise ValueError("timeouts, margins and rates are positive")
        if min(self.max_ongoing, self.max_queued, self.burst_per_token) < 1:
            raise ValueError("request bounds are at least 1")
        if self.blocking_threads < 1 or self.queue_retry_after_s < 0:
            raise ValueError("at least one blocking thread, and Retry-After is not negative")

    def deadline_s(self, method: str, command_timeout_s: float) -> float:
        """The seconds a request of ``method`` may take, for commands that wait up to
        ``command_timeout_s`` for their reply."""
        wait = command_timeout_s if method == "POST" else self.read_timeout_s
        return wait + self.margin_s


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """``rate`` requests per second per principal, bursts of up to ``burst``."""

    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict, repr=False)
    _swept: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")

    def take(self, principal: str, now: float) -> int | None:
        """None when ``principal`` may go ahead (one request taken from its bucket), else the
        whole seconds to wait before it may."""
        self._sweep(now)
        bucket = self._buckets.get(principal)
        if bucket is None:
            bucket = self._buckets[principal] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        if now - self._swept < full_after:
            return
        self._swept = now
        for name in [n for n, b in self._buckets.items() if now - b.at >= full_after]:
            del self._buckets[name]
