"""Per-principal request rates: a token bucket for each token name.

A bucket holds at most ``burst`` requests and refills at ``rate`` per second; a request takes
one or is refused with the seconds until one is there (the ``Retry-After`` of a 429). Buckets
of principals idle long enough to be full again are dropped, so memory is bounded by the
principals active in the last ``burst / rate`` seconds. Not thread-safe: one per event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["RateLimiter"]


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
