"""The Kafka ACLs of the two principals, as computed: the API principal may write the
commands topic and read the replies and the control topic, and nothing else; the workers'
grants cover every name the service uses. ``tests/integration/test_kafka_acls.py`` applies
them to a real broker."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from eventledger.acls import Acl, Operation, Pattern, Resource, Role, acls
from eventledger.cli import app
from topology.names import Names
from topology.topics import TopicKind, TopicLayout

APP = "ledger"


def _granted(rules: list[Acl], role: Role, resource: Resource, name: str) -> set[Operation]:
    """The operations ``role`` holds on ``resource`` ``name`` (as Kafka matches patterns)."""
    return {
        op
        for r in rules
        if r.role is role and r.resource is resource
        for op in r.operations
        if (r.name == name if r.pattern is Pattern.LITERAL else name.startswith(r.name))
    }


RULES = acls(APP, worker="User:worker", api="User:api")
LAYOUT, NAMES = TopicLayout(APP, 4, reply_lanes=2), Names(APP)


def test_the_api_principal_writes_commands_reads_replies_and_control_and_nothing_else() -> None:
    api = [r for r in RULES if r.role is Role.API]
    assert {r.principal for r in api} == {"User:api"}
    topics = {spec.name for spec in LAYOUT.specs()} | {LAYOUT.control, LAYOUT.snapshots(3)}
    granted = {t: _granted(RULES, Role.API, Resource.TOPIC, t) for t in topics}
    assert granted == {
        t: {Operation.WRITE}
        if t == LAYOUT.name(TopicKind.COMMANDS)
        else {Operation.READ}
        if t in (LAYOUT.name(TopicKind.REPLIES), LAYOUT.control)
        else set()
        for t in topics
    }
    assert {r.resource for r in api} == {Resource.TOPIC, Resource.GROUP}, "no txn id, no cluster"
    client_group = NAMES.group("client", unique=True)
    assert _granted(RULES, Role.API, Resource.GROUP, client_group) == {Operation.DESCRIBE}
    for other in (NAMES.commands_group, NAMES.group("restore"), NAMES.group("audit", unique=True)):
        assert _granted(RULES, Role.API, Resource.GROUP, other) == set()


def test_the_workers_grants_cover_every_name_the_service_uses() -> None:
    topics = [s.name for s in LAYOUT.specs()] + [LAYOUT.control, LAYOUT.snapshots(7)]
    for topic in topics:
        assert _granted(RULES, Role.WORKER, Resource.TOPIC, topic) == {
            Operation.READ,
            Operation.WRITE,
            Operation.CREATE,
            Operation.DESCRIBE_CONFIGS,
        }
    for txn in (NAMES.partition_txn(0), NAMES.coordinator_txn, NAMES.shadow_txn(3)):
        assert _granted(RULES, Role.WORKER, Resource.TRANSACTIONAL_ID, txn) == {Operation.WRITE}
    groups = [NAMES.commands_group, NAMES.group("coordinator"), NAMES.group("ids", unique=True)]
    for group in groups:
        assert _granted(RULES, Role.WORKER, Resource.GROUP, group) == {Operation.DESCRIBE}
    assert _granted(RULES, Role.WORKER, Resource.CLUSTER, "kafka-cluster") == {
        Operation.DESCRIBE_CONFIGS
    }
    assert _granted(RULES, Role.WORKER, Resource.TOPIC, "ledger2.events") == set()


def test_kafka_acls_lines_and_bindings() -> None:
    lines = [r.command_line() for r in RULES]
    assert "--add --allow-principal User:api --operation Write --topic ledger.commands" in lines
    assert (
        "--add --allow-principal User:worker --operation Write --transactional-id ledger- "
        "--resource-pattern-type prefixed" in lines
    )
    assert "--add --allow-principal User:worker --operation DescribeConfigs --cluster" in lines
    bindings = [b for r in RULES for b in r.bindings()]
    assert len(bindings) == len(set(bindings)) == sum(len(r.operations) for r in RULES) == 12
    cluster = next(b for b in bindings if b.name == "kafka-cluster")
    assert cluster.restype.name == "BROKER"  # librdkafka's name of Kafka's cluster resource


@pytest.mark.parametrize(
    ("worker", "api", "refusal"),
    [
        ("User:ledger", "User:ledger", "two principals"),
        ("ledger", "User:api", "TYPE:NAME"),
        ("User:", "User:api", "TYPE:NAME"),
    ],
)
def test_principals_are_checked(worker: str, api: str, refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        acls(APP, worker=worker, api=api)


def test_the_cli_prints_the_table_and_the_kafka_acls_lines() -> None:
    args = ["acls", "--app", "bank", "--api-principal", "User:api", "--worker-principal", "User:w"]
    done = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "Kafka ACLs of bank" in done.output and "bank.commands" in done.output
    lines = [ln for ln in done.output.splitlines() if ln.startswith("kafka-acls.sh ")]
    assert len(lines) == len(RULES)
    assert all(
        "--command-config admin.properties --add --allow-principal User:" in ln for ln in lines
    )
    same = CliRunner().invoke(app, [*args[:-1], "User:api"])
    assert same.exit_code == 1 and "two principals" in same.output
