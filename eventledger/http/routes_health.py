"""The routes a load balancer or an orchestrator probes: liveness and readiness (no token)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from eventledger.http.problems import problem
from eventledger.http.replica import bound_replica

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every partition runs, and Kafka and Ray answer")
def readyz() -> Response:
    problems = bound_replica().readiness()
    if problems:
        return problem(503, "not_ready", "; ".join(problems))
    return JSONResponse({"status": "ready"})
