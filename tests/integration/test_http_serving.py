"""Each serving mode that runs here serves the API with auth, and ``stop_http`` removes it:
``uvicorn`` (two workers sharing the port) and ``proxy`` (Ray Serve's proxy). The full
route and limit suite (test_http.py) runs on the default mode; ``direct`` needs Ray started
with direct ingress (bench/http.py runs it in a Ray of its own). The modes take turns on
the session's shared service (``SharedServices``), each on an account of its own."""

from __future__ import annotations

import uuid

import httpx
import pytest
from ray import serve

from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.serving import Serving, deploy_http, stop_http
from eventledger.http.workers import worker_names
from eventledger.runtime import free_port
from tests.integration.conftest import SharedServices
from tests.integration.waiting import wait_ready


@pytest.mark.parametrize(
    "serving",
    # Serve's proxy mode (not the default) starts Serve's controller and proxy: slow group
    [Serving.UVICORN, pytest.param(Serving.PROXY, marks=pytest.mark.slow)],
)
def test_a_mode_serves_a_deposit_and_a_read_with_auth_and_stop_removes_it(
    shared: SharedServices, serving: Serving
) -> None:
    settings = shared.supervised().settings
    token, line = mint_token(frozenset(Scope), "serving-test")
    auth = {"Authorization": f"Bearer {token}"}
    account = f"s-{uuid.uuid4().hex[:6]}"
    replicas = 2 if serving is Serving.UVICORN else 1
    url = deploy_http(
        settings, TokenTable.parse(line), port=free_port(), replicas=replicas, serving=serving
    )
    try:
        if serving is Serving.UVICORN:
            assert len(worker_names(settings.app_id)) == replicas
        assert httpx.get(f"{url}/accounts/{account}", timeout=10).status_code == 401
        opened = httpx.post(
            f"{url}/accounts", json={"id": account, "currency": "EUR"}, headers=auth,
            timeout=60,
        )  # fmt: skip
        assert opened.status_code == 201, opened.text
        for _ in range(4):  # new connections: spread over the workers by the kernel
            deposit = httpx.post(
                f"{url}/accounts/{account}/deposits", json={"amount": 5}, headers=auth,
                timeout=60,
            )  # fmt: skip
            assert deposit.status_code == 200, deposit.text
        read = httpx.get(f"{url}/accounts/{account}", headers=auth, timeout=10)
        assert read.status_code == 200 and read.json()["balance"] == 20
        wait_ready(url)
        assert "/accounts/{account}/deposits" in httpx.get(f"{url}/openapi.json").json()["paths"]
    finally:
        assert stop_http(settings.app_id)
    assert worker_names(settings.app_id) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=10)
    assert not stop_http(settings.app_id)  # nothing left to remove
    serve.shutdown()
