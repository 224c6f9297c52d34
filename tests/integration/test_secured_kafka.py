"""The service through a SASL/PLAIN listener (the local broker's second configuration):
every Kafka client takes the pass-through properties, a wrong password is one clear line,
and the password appears in no output (logs, status, errors, the actors' Ray logs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from rich.console import Console
from typer.testing import CliRunner

from actors.audit import fold_events
from actors.deployment import find_coordinator
from eventledger.cli import app
from eventledger.report import print_status
from ledger.aggregate import LEDGER
from ledger.commands import Deposit, OpenAccount, Withdraw
from tests.conftest import SaslLogin
from tests.integration.conftest import ray_logs, running
from topology.settings import Settings


def _sasl_environ(login: SaslLogin, password: str) -> dict[str, str]:
    return {
        "EVENTLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "EVENTLEDGER_KAFKA_SASL_MECHANISM": "PLAIN",
        "EVENTLEDGER_KAFKA_SASL_USERNAME": login.user,
        "EVENTLEDGER_KAFKA_SASL_PASSWORD": password,
    }


@pytest.mark.usefixtures("ray_local")
def test_the_service_runs_through_sasl_and_never_shows_the_password(
    sasl_login: SaslLogin,
    app_id: str,
    state_dir: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = Settings.resolve(
        app_id=app_id,
        bootstrap_servers=sasl_login.bootstrap,
        partitions=2,
        state_dir=state_dir,
        environ=_sasl_environ(sasl_login, sasl_login.password),
    )
    assert settings.kafka.get("sasl.password") == sasl_login.password
    assert sasl_login.password not in repr(settings)
    with running(settings) as served:
        c = served.client
        for account in ("a", "b", "c"):
            assert c.execute(account, OpenAccount("EUR")).accepted
            assert c.execute(account, Deposit(1_000)).accepted
        assert c.execute("a", Withdraw(400)).accepted
        assert c.execute("b", Withdraw(5_000)).code == "insufficient_funds"
        balances = {a: c.reads.view(a).balance for a in "abc"}  # type: ignore[union-attr]
        folded = fold_events(settings, LEDGER)
        assert sum(balances.values()) == 3 * 1_000 - 400
        assert {k: s.balance for k, s in folded.items()} == balances
        status = ray.get(find_coordinator(app_id).status.remote(), timeout=60)
        console = Console(record=True, width=120)
        print_status(console, status)
        shown = console.export_text() + repr(status)
    assert "running" in shown
    outputs = [shown, caplog.text, *capfd.readouterr(), ray_logs()]
    assert all(sasl_login.password not in out for out in outputs)


def test_a_wrong_password_is_one_line_naming_the_refusal_never_the_password(
    sasl_login: SaslLogin, tmp_path: Path
) -> None:
    wrong = "not-the-pw-7f3a9c"
    properties = tmp_path / "client.properties"
    properties.write_text(
        "# a client's properties file\n"
        f"bootstrap.servers={sasl_login.bootstrap}\n"
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=PLAIN\n"
        f"sasl.username={sasl_login.user}\n"
        f"sasl.password={wrong}\n"
    )
    env = {"EVENTLEDGER_KAFKA_PROPERTIES_FILE": str(properties), "KAFKA_BOOTSTRAP_SERVERS": ""}
    result = CliRunner().invoke(app, ["serve", "--app", "wrong-pw"], env=env)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1
    assert len(lines) == 1, result.output
    assert "refused the login" in lines[0] and sasl_login.bootstrap in lines[0]
    assert wrong not in result.output
