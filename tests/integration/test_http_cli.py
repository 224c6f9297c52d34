"""``eventledger serve --http`` and ``stop`` as a newcomer runs them, against the session's
broker and Ray: the command returns once the API answers, and stop removes it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import ray
from ray import serve

from eventledger.http.auth import Scope, mint_token
from eventledger.runtime import free_port


@pytest.mark.slow  # ~50 s: a second service and Serve; deploy_http is in test_http.py
def test_serve_http_answers_when_it_returns_and_stop_removes_it(
    bootstrap: str, state_dir: str, ray_local: None, tmp_path: Path
) -> None:
    token, line = mint_token(frozenset(Scope), "cli-test")
    tokens = tmp_path / "tokens"
    tokens.write_text(line + "\n")
    app_id, port = f"t-{uuid.uuid4().hex[:10]}", free_port()
    env = {
        **os.environ,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EVENTLEDGER_STATE_DIR": state_dir,
        "EVENTLEDGER_API_TOKENS_FILE": str(tokens),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eventledger", *args],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip

    url = f"http://127.0.0.1:{port}"
    try:
        served = cli("serve", "--app", app_id, "--partitions", "2", "--http", "--port", str(port))
        assert served.returncode == 0, served.stderr
        assert f"HTTP API: {url}" in served.stdout
        assert "INFO" not in served.stdout + served.stderr  # no Ray or Serve log lines
        # it answered when serve returned: no waiting here
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{url}/accounts/x", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        opened = httpx.post(
            f"{url}/accounts", json={"id": "cli", "currency": "EUR"}, headers=auth, timeout=60
        )
        assert opened.status_code == 201
        deposit = httpx.post(
            f"{url}/accounts/cli/deposits", json={"amount": 5}, headers=auth, timeout=60
        )
        assert deposit.status_code == 200
        assert httpx.get(f"{url}/accounts/cli", headers=auth, timeout=10).json()["balance"] == 5

        stopped = cli("stop", "--app", app_id)
        assert stopped.returncode == 0, stopped.stderr
        assert "HTTP API removed" in stopped.stdout
        with pytest.raises(httpx.ConnectError):  # the API is gone: nothing holds the port
            httpx.get(f"{url}/healthz", timeout=10)
    finally:
        cli("stop", "--app", app_id)
        serve.shutdown()
