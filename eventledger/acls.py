"""The Kafka ACLs of an application's two principals, computed from its names, and applied.

- The **worker** principal runs the service: the partition, coordinator, history and rebuild
  actors (and the operator's tools). It reads and writes every topic of the application,
  creates them, uses its transactional ids, and reads the broker's default replication
  factor.
- The **API** principal runs the HTTP replicas and the clients (``Settings.for_api``). It
  may write the commands topic, read the replies topic and the control topic (the routing
  table its commands follow), and look up the coordinator of its consumers' groups (never
  joined, never committed to). Nothing else: no other topic, no transactional id, nothing on
  the cluster. So it can ask for a command, never forge an event, a reply, a snapshot, an
  internal command (a transfer's credit leg) or a control record (the routing table).

Kafka counts READ and WRITE as DESCRIBE too, and since Kafka 3.0 (KIP-679) an idempotent
producer needs no IDEMPOTENT_WRITE on the cluster once it may write a topic; both are checked
on the real broker by ``tests/integration/test_kafka_acls.py``.

Grants go by prefix (``{app}.`` for topics, ``{app}-`` for transactional ids and groups), so an
application whose id begins with another's id and a ``.`` or ``-`` falls under the other's
worker grants: give applications ids that are not such prefixes of each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from topology.names import Names
from topology.topics import TopicKind, TopicLayout

__all__ = ["Acl", "Operation", "Pattern", "Resource", "Role", "acls", "apply_acls"]


class Role(StrEnum):
    """Whose grant an ACL is."""

    WORKER = "worker"
    API = "api"


class Resource(StrEnum):
    """A Kafka resource type, spelled as ``kafka-acls.sh`` spells its option."""

    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional-id"
    CLUSTER = "cluster"


class Pattern(StrEnum):
    """How an ACL's name matches: the resource itself, or every one it begins."""

    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    """The Kafka operations granted here, spelled as ``kafka-acls.sh`` spells them."""

    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DESCRIBE = "Describe"
    DESCRIBE_CONFIGS = "DescribeConfigs"


_CLUSTER = "kafka-cluster"  # the name of Kafka's one cluster resource


@dataclass(frozen=True)
class Acl:
    """ALLOW ``operations`` on ``resource`` ``name`` (matched by ``pattern``) to
    ``principal`` from any host; ``why`` says which part of the service needs it."""

    role: Role
    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operations: tuple[Operation, ...]
    why: str

    def command_line(self) -> str:
        """The ``kafka-acls.sh`` arguments that add it (after the connection options)."""
        target = (
            "--cluster" if self.resource is Resource.CLUSTER else f"--{self.resource} {self.name}"
        )
        pattern = " --resource-pattern-type prefixed" if self.pattern is Pattern.PREFIXED else ""
        operations = " ".join(f"--operation {op}" for op in self.operations)
        return f"--add --allow-principal {self.principal} {operations} {target}{pattern}"

    def bindings(self) -> list[Any]:
        """confluent-kafka ``AclBinding`` objects, one per operation."""
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        # librdkafka names Kafka's cluster resource type (code 4) BROKER.
        resource = (
            ResourceType.BROKER
            if self.resource is Resource.CLUSTER
            else (ResourceType[self.resource.name])
        )
        pattern = ResourcePatternType[self.pattern.name]
        return [
            AclBinding(
                resource,
                self.name,
                pattern,
                self.principal,
                "*",
                AclOperation[op.name],
                AclPermissionType.ALLOW,
            )
            for op in self.operations
        ]


def acls(app_id: str, *, worker: str, api: str) -> list[Acl]:
    """The ACLs of application ``app_id``: the ``worker`` principal's, then the ``api``
    principal's (principals as Kafka writes them, ``User:name``). Raises ValueError for a
    malformed principal, or the same one for both."""
    for principal in (worker, api):
        kind, _, name = principal.partition(":")
        if not kind or not name or not kind.isalpha():
            raise ValueError(f"a principal is TYPE:NAME, such as User:ledger, got {principal!r}")
    if worker == api:
        raise ValueError(f"the API and the workers need two principals, got {api!r} for both")
    layout, names = TopicLayout(app_id, 1), Names(app_id)
    w, a = Role.WORKER, Role.API
    op = Operation
    return [
        Acl(w, worker, Resource.TOPIC, layout.prefix, Pattern.PREFIXED,
            (op.READ, op.WRITE, op.CREATE, op.DESCRIBE_CONFIGS),
            "every topic of the application: the actors read and write them, the coordinator "
            "creates them and checks their configs"),
        Acl(w, worker, Resource.TRANSACTIONAL_ID, names.prefix, Pattern.PREFIXED, (op.WRITE,),
            "the transactional ids of the partitions, the coordinator and the rebuilds"),
        Acl(w, worker, Resource.GROUP, names.commands_group, Pattern.LITERAL, (op.DESCRIBE,),
            "the command readers' group (named, never committed to)"),
        Acl(w, worker, Resource.GROUP, names.prefix, Pattern.PREFIXED, (op.DESCRIBE,),
            "the other readers' groups (named, never committed to)"),
        Acl(w, worker, Resource.CLUSTER, _CLUSTER, Pattern.LITERAL, (op.DESCRIBE_CONFIGS,),
            "the broker's default.replication.factor (topics created with replication -1)"),
        Acl(a, api, Resource.TOPIC, layout.name(TopicKind.COMMANDS), Pattern.LITERAL,
            (op.WRITE,), "send commands (an idempotent producer)"),
        Acl(a, api, Resource.TOPIC, layout.name(TopicKind.REPLIES), Pattern.LITERAL,
            (op.READ,), "read the replies (from the end of the client's lane)"),
        Acl(a, api, Resource.TOPIC, layout.control, Pattern.LITERAL,
            (op.READ,), "read the routing table and the partition count (never write them)"),
        Acl(a, api, Resource.GROUP, names.group_prefix("client"), Pattern.PREFIXED,
            (op.DESCRIBE,), "the reply and control consumers' groups (never joined nor "
            "committed to)"),
    ]  # fmt: skip


def apply_acls(admin_config: dict[str, Any], wanted: list[Acl], timeout: float = 30.0) -> None:
    """Create ``wanted`` through an admin client of ``admin_config`` (a principal allowed to
    alter ACLs). Creating an ACL that exists changes nothing. Raises RuntimeError naming
    every binding Kafka refused and why."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config)
    pairs = [
        (acl, op, binding)
        for acl in wanted
        for op, binding in zip(acl.operations, acl.bindings(), strict=True)
    ]
    futures = admin.create_acls([b for _, _, b in pairs], request_timeout=timeout)
    refused: list[str] = []
    for acl, op, binding in pairs:
        try:
            futures[binding].result(timeout=timeout)
        except KafkaException as e:
            where = f"{acl.resource} {acl.name}{'*' if acl.pattern is Pattern.PREFIXED else ''}"
            refused.append(f"{op} on {where} for {acl.principal}: {e.args[0].str()}")
    if refused:
        raise RuntimeError(f"Kafka refused {len(refused)} ACL(s): " + "; ".join(refused))
