"""The routes a load balancer or an orchestrator probes: liveness and readiness (no token).

Both are ``async`` and call nothing that blocks or needs a thread, so they answer while every
blocking thread and every slot of the replica is taken by slow reads. Readiness is cached
(``CachedReadiness``): the check runs in a background thread at most once every
``READY_TTL_S``, a probe answers the last result at once, and the answer is generic; what is
not ready goes to the log, not to whoever asks (it names brokers and Ray's exceptions)."""

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
NOT_CHECKED = "the first readiness check has not finished"
HUNG = "the readiness check does not finish"
router = APIRouter()


def _in_thread(refresh: Callable[[], None]) -> None:
    threading.Thread(target=refresh, name="readiness", daemon=True).start()


class CachedReadiness:
    """``check`` (what is not ready: empty when ready; it may block for seconds) run in the
    background at most once every ``ttl_s``. A call never waits for it: it starts a check when
    the last answer is older than ``ttl_s`` and none runs, and returns the last answer:
    ``[NOT_CHECKED]`` until the first check ends, and not ready either when a check has run
    for over ``hung_s`` (a check that hangs never leaves a stale "ready"). ``spawn`` runs a
    check (in a new thread)."""

    def __init__(
        self,
        check: Callable[[], list[str]],
        ttl_s: float = READY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], None]], None] = _in_thread,
        hung_s: float = 15.0,
    ) -> None:
        self._check, self._ttl_s, self._clock, self._spawn = check, ttl_s, clock, spawn
        self._hung_s = hung_s
        self._lock = threading.Lock()
        self._answer: list[str] = [NOT_CHECKED]
        self._at: float | None = None
        self._since: float | None = None  # when the running check began

    def __call__(self) -> list[str]:
        with self._lock:
            now = self._clock()
            start = self._since is None and (self._at is None or now - self._at >= self._ttl_s)
            if start:
                self._since = now
            hung = self._since is not None and now - self._since > self._hung_s
            answer = [HUNG] if hung else self._answer
        if start:
            self._spawn(self._refresh)
        return answer

    def _refresh(self) -> None:
        answer = [HUNG]
        try:
            answer = self._check()
        except Exception as e:  # a check that fails says so, as a reason
            answer = [f"the readiness check failed: {type(e).__name__}: {e}"]
        finally:
            if answer and answer != self._answer:
                log.warning("not ready: %s", "; ".join(answer))
            with self._lock:
                self._answer, self._at, self._since = answer, self._clock(), None


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every partition runs, and Kafka and Ray answer")
async def readyz() -> Response:
    if bound_replica().readiness():
        return problem(503, "not_ready", "the service is not ready", headers={"Retry-After": "2"})
    return JSONResponse({"status": "ready"})
