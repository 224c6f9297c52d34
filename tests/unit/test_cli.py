"""The console script as a script sees it: exit codes, stdout for output, stderr for errors,
environment variables named in ``--help``. The service is faked here (a pure status); the
integration test ``test_cli_status`` runs it against a deployed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec
import pytest
from typer.testing import CliRunner

from actors.messages import RowState, ServiceStatus, StatusRow
from eventledger import service
from eventledger.cli import app
from eventledger.cli.service import NOT_RUNNING_EXIT
from eventledger.report import json_rows, not_running

runner = CliRunner()


def _row(partition: int, state: RowState) -> StatusRow:
    return StatusRow(
        partition=partition,
        node="ef32dffa0000",
        state=state,
        generation=0,
        aggregates=3,
        committed_offset=10,
        lag=0,
        restarts=0,
        last_commit_age=0.5,
        error=None,
        rebuild=None,
    )


def _status(*states: RowState) -> ServiceStatus:
    return ServiceStatus(
        app_id="demo",
        partitions=len(states),
        bootstrap_servers="127.0.0.1:9092",
        nodes=["ef32dffa0000"],
        ticks=1,
        observed_at=0.0,
        errors={},
        rows=[_row(p, s) for p, s in enumerate(states)],
        rebuilds={},
    )


def test_not_running_names_partitions_that_take_no_commands() -> None:
    r = RowState
    assert not_running(_status(r.RUNNING, r.REBUILDING)) == []
    assert not_running(_status(r.RUNNING, r.PAUSED, r.RESTORING, r.BLOCKED)) == [1, 2, 3]


def test_json_rows_are_one_object_per_partition() -> None:
    lines = json_rows(_status(RowState.RUNNING, RowState.PAUSED))
    rows = [json.loads(line) for line in lines]
    assert [r["partition"] for r in rows] == [0, 1]
    assert [r["state"] for r in rows] == ["running", "paused"]
    assert all(r["app_id"] == "demo" and r["committed_offset"] == 10 for r in rows)


@pytest.mark.parametrize(
    ("states", "code"),
    [
        ((RowState.RUNNING, RowState.RUNNING), 0),
        ((RowState.RUNNING, RowState.MISSING), NOT_RUNNING_EXIT),
    ],
)
def test_status_json_and_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, states: tuple[RowState, ...], code: int
) -> None:
    monkeypatch.setattr(service, "service_status", lambda app_id: _status(*states))
    result = runner.invoke(app, ["status", "--json", "--app", "demo"])
    assert result.exit_code == code
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["state"] for r in rows] == list(states)
    assert ("not running: partition [1]" in result.stderr) == (code != 0)


def test_status_table_goes_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "service_status", lambda app_id: _status(RowState.RUNNING))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0 and "running" in result.stdout and not result.stderr


def test_an_unreachable_ray_is_one_line_on_stderr() -> None:
    # a process of its own: this one may already be connected to a Ray (the session's)
    result = subprocess.run(
        [sys.executable, "-m", "eventledger", "status", "--app", "x"],
        env={**os.environ, "RAY_ADDRESS": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot reach the Ray cluster at RAY_ADDRESS=")
    assert len(result.stderr.splitlines()) == 1


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("eventledger 0.")


@pytest.mark.parametrize(
    ("command", "variables"),
    [
        (["serve"], ["EVENTLEDGER_APP_ID", "EVENTLEDGER_PARTITIONS"]),
        (["status"], ["EVENTLEDGER_APP_ID"]),
        (["stop"], ["EVENTLEDGER_APP_ID"]),
        ([], ["EVENTLEDGER_VERBOSE"]),
    ],
)
def test_help_names_each_options_environment_variable(
    command: list[str], variables: list[str]
) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for variable in variables:
        assert f"env var: {variable}" in result.stdout


def test_the_status_row_crosses_as_json_without_loss() -> None:
    row = _row(2, "running")
    [line] = json_rows(ServiceStatus(**{**msgspec.structs.asdict(_status()), "rows": [row]}))
    decoded = json.loads(line)
    decoded.pop("app_id")
    assert msgspec.convert(decoded, StatusRow) == row
