"""Two Kafka principals under the session broker's authorizer, with the ACLs
``eventledger.acls`` computes, applied by ``eventledger acls --apply``: the worker principal
runs the service, the API principal sends commands and gets their replies through the normal
client, reads the routing table from the control topic, and is refused everything else
(writing internal commands, events or control records, a partition's transactional id, even
seeing the other topics)."""

from __future__ import annotations

import pytest
import ray
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from actors.audit import fold_events
from actors.deployment import find_coordinator
from actors.kafka import admin_config, producer_config
from eventledger.bank import BankClient
from eventledger.cli import app
from eventledger.transfers import SettlementError, SettlementRefusal
from ledger.aggregate import LEDGER
from ledger.commands import Deposit, OpenAccount, Withdraw
from tests.conftest import AclLogins, SaslLogin
from tests.integration.conftest import ray_logs, running
from tests.integration.waiting import wait_until
from topology.names import Names
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout


def _sasl(login: SaslLogin) -> dict[str, str]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": login.user,
        "sasl.password": login.password,
    }


def _variables(prefix: str, login: SaslLogin) -> dict[str, str]:
    return {prefix + k.upper().replace(".", "_"): v for k, v in _sasl(login).items()}


def _produce_refusals(settings: Settings, topics: list[str]) -> dict[str, int | None]:
    """Each topic's delivery error code for one record produced there (None: stored)."""
    found: dict[str, int | None] = {}
    producer = Producer(producer_config(settings))
    for topic in topics:
        producer.produce(
            topic,
            b"forged",
            b"a",
            0,
            on_delivery=lambda e, _m, t=topic: found.__setitem__(t, e and e.code()),
        )
    assert producer.flush(30) == 0
    return found


@pytest.mark.usefixtures("ray_local")
def test_the_api_principal_sends_commands_and_may_write_nothing_else(
    acl_logins: AclLogins, app_id: str, state_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = acl_logins.admin.bootstrap
    principals = ["--api-principal", "User:api", "--worker-principal", "User:worker"]
    applied = CliRunner().invoke(
        app,
        ["acls", "--app", app_id, *principals, "--apply"],
        env={
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            **_variables("EVENTLEDGER_KAFKA_", acl_logins.admin),
        },
    )
    assert applied.exit_code == 0, applied.output
    assert f"applied: 12 ACL bindings on Kafka at {bootstrap}" in applied.output
    settings = Settings.resolve(
        app_id=app_id,
        bootstrap_servers=bootstrap,
        partitions=2,
        state_dir=state_dir,
        environ={
            **_variables("EVENTLEDGER_KAFKA_", acl_logins.worker),
            **_variables("EVENTLEDGER_API_KAFKA_", acl_logins.api),
        },
    )
    api = settings.for_api()
    assert api.kafka.get("sasl.username") == "api" and api.api_kafka is None
    assert acl_logins.api.password not in repr(settings) + repr(api)
    layout = TopicLayout.of(settings)
    with running(settings) as served, BankClient(api, timeout=60) as client:
        # the workers created the topics and run the partitions; the client is the API
        assert served.client.execute("a", OpenAccount("EUR")).accepted
        assert client.execute("a", Deposit(1_000)).accepted
        assert client.execute("a", Withdraw(5_000)).code == "insufficient_funds"
        assert client.reads.view("a").balance == 1_000  # type: ignore[union-attr]
        assert {k: s.balance for k, s in fold_events(settings, LEDGER).items()} == {"a": 1_000}
        # a refusal may be only logged (a reply consumer's or an actor's group lookup)
        refusals = [r.getMessage() for r in caplog.records if "authorization" in r.getMessage()]
        assert refusals == []
        assert "authorization failed" not in ray_logs().lower()
        # money in flight and its settlement run as the service, not as the API
        assert client.in_flight() == []
        with pytest.raises(SettlementError) as refused:
            client.settle("t-none", source="a", refund=True, operator="ops", reason="test")
        assert refused.value.code is SettlementRefusal.UNKNOWN_TRANSFER

        # the client reads the control topic: the routing table the coordinator publishes
        assert client.routes.table is None and client.routes.partitions == 2
        table = ray.get(find_coordinator(app_id).start_slots.remote(), timeout=60)
        wait_until(lambda: client.routes.table == table, 30, "the API client reads the table")
        assert client.reads.routes.table == table
        forged = _produce_refusals(
            api, [layout.name(TopicKind.INTERNAL), layout.name(TopicKind.EVENTS), layout.control]
        )
        assert set(forged.values()) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}, forged
        fencer = Producer(producer_config(api, transactional_id=Names(app_id).partition_txn(0)))
        with pytest.raises(KafkaException) as fenced:
            fencer.init_transactions(30)
        assert fenced.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        seen = AdminClient(admin_config(api)).list_topics(timeout=30).topics
        visible = {t for t in seen if t.startswith(layout.prefix)}
        assert visible == {
            layout.name(TopicKind.COMMANDS),
            layout.name(TopicKind.REPLIES),
            layout.control,
        }
        assert client.reads.view("a").balance == 1_000  # type: ignore[union-attr]
