"""The routes a load balancer or an orchestrator probes: liveness and readiness (no token).

Readiness is cached (``CachedReadiness``): a flood of probes costs one check every
``READY_TTL_S``, and its answer is generic; what is not ready goes to the log, not to
whoever asks (it names brokers and Ray's exceptions)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from eventledger.http.problems import problem
from eventledger.http.replica import bound_replica

__all__ = ["READY_TTL_S", "CachedReadiness", "router"]

log = logging.getLogger(__name__)
READY_TTL_S = 2.0
router = APIRouter()


class CachedReadiness:
    """``check`` (what is not ready: empty when ready) run at most once every ``ttl_s``;
    concurrent callers within that time get the last answer without waiting for a check."""

    def __init__(
        self,
        check: Callable[[], list[str]],
        ttl_s: float = READY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check, self._ttl_s, self._clock = check, ttl_s, clock
        self._lock = threading.Lock()
        self._answer: list[str] = []
        self._at: float | None = None

    def __call__(self) -> list[str]:
        now = self._clock()
        fresh = self._at is not None and now - self._at < self._ttl_s
        if fresh or not self._lock.acquire(blocking=self._at is None):
            return self._answer  # another probe is checking: the last answer stands
        try:
            answer = self._check()
            if answer and answer != self._answer:
                log.warning("not ready: %s", "; ".join(answer))
            self._answer, self._at = answer, self._clock()
        finally:
            self._lock.release()
        return self._answer


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every partition runs, and Kafka and Ray answer")
def readyz() -> Response:
    if bound_replica().readiness():
        return problem(503, "not_ready", "the service is not ready", headers={"Retry-After": "2"})
    return JSONResponse({"status": "ready"})
