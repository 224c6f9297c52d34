"""``eventledger status`` as a probe, run as a script against a deployed service: the
session's shared one (``SharedServices``), which the test stops, after every other test on
it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import ray

from actors.deployment import stop_service
from tests.integration.conftest import SharedServices


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    return subprocess.run(
        [sys.executable, "-m", "eventledger", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.shared_last(stops=True)
def test_status_json_is_quiet_and_exits_by_the_partitions(shared: SharedServices) -> None:
    service = shared.supervised()
    app_id = service.settings.app_id
    done = _cli("status", "--json", "--app", app_id)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["partition"] for r in rows] == list(range(service.settings.partitions))
    assert {r["state"] for r in rows} == {"running"}
    assert done.stderr == ""  # no Ray log lines (its token-authentication warning) without -v

    stop_service(app_id)
    gone = _cli("status", "--app", app_id)
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.startswith(f"error: no service '{app_id}'")
