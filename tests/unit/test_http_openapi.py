"""The OpenAPI document declares the bearer scheme, and every route but the health checks
requires it with the scope it checks."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from eventledger.http.app import api

SCOPES = {
    ("/accounts", "post"): "write",
    ("/accounts/{account}/deposits", "post"): "mint",
    ("/accounts/{account}/withdrawals", "post"): "write",
    ("/accounts/{account}/close", "post"): "write",
    ("/transfers", "post"): "write",
    ("/transfers/{transfer_id}/post", "post"): "write",
    ("/transfers/{transfer_id}/void", "post"): "write",
    ("/transfers/in-flight", "get"): "read",
    ("/transfers/{transfer_id}/settle", "post"): "operate",
    ("/accounts/{account}", "get"): "read",
    ("/accounts/{account}/history", "get"): "read",
    ("/accounts/{account}/state", "get"): "read",
}
HEALTH = {("/healthz", "get"), ("/readyz", "get")}


def _schema() -> dict[str, Any]:
    answer = TestClient(api).get("/openapi.json")
    assert answer.status_code == 200
    schema: dict[str, Any] = answer.json()
    return schema


def test_the_bearer_scheme_is_declared() -> None:
    scheme = _schema()["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "eventledger token" in scheme["description"]


def test_every_route_but_health_requires_the_bearer_scheme_with_its_scope() -> None:
    operations = {
        (path, method): operation
        for path, item in _schema()["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == set(SCOPES) | HEALTH  # a new route is added to SCOPES
    for route, scope in SCOPES.items():
        assert operations[route]["security"] == [{"bearer": [scope]}], route
    for route in HEALTH:
        assert "security" not in operations[route]
