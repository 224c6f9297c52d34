"""``eventledger acls``: the Kafka ACLs of the workers' and the API tier's principals."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from eventledger.cli.common import AppOption, console, fail, resolve_app_id

if TYPE_CHECKING:
    from topology.settings import Settings

app = typer.Typer()


@app.command()
def acls(
    *,
    api_principal: Annotated[
        str,
        typer.Option(help="The API tier's Kafka principal (HTTP replicas, clients): User:NAME."),
    ],
    worker_principal: Annotated[
        str, typer.Option(help="The workers' Kafka principal (the actors): User:NAME.")
    ],
    app_id: AppOption = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Create them on Kafka, as the principal EVENTLEDGER_KAFKA_* log in with "
            "(one allowed to alter ACLs).",
        ),
    ] = False,
) -> None:
    """Show the Kafka ACLs the application's two principals need, as a table and as
    kafka-acls.sh lines; with --apply, create them.

    The API principal may write the commands topic and read the replies, nothing else: the
    internal commands, events, snapshots and state are the workers' alone."""
    from rich.table import Table

    from eventledger.acls import acls as compute
    from eventledger.acls import apply_acls

    name = resolve_app_id(app_id)
    try:
        wanted = compute(name, worker=worker_principal, api=api_principal)
    except ValueError as e:
        raise fail(str(e)) from None
    table = Table(title=f"Kafka ACLs of {name} (allow, from any host)")
    for column in ("principal", "resource", "name", "operations", "why"):
        table.add_column(column)
    for acl in wanted:
        match = f"{acl.name}*" if acl.pattern.value == "prefixed" else acl.name
        operations = ", ".join(op.value for op in acl.operations)
        table.add_row(f"{acl.principal} ({acl.role})", acl.resource, match, operations, acl.why)
    console.print(table)
    head = 'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config admin.properties'
    sys.stdout.write("".join(f"{head} {acl.command_line()}\n" for acl in wanted))
    if not apply:
        return
    from actors.kafka import admin_config

    settings = _admin_settings(name)
    try:
        with console.status(f"creating the ACLs on Kafka at {settings.bootstrap_servers}..."):
            apply_acls(admin_config(settings), wanted)
    except RuntimeError as e:
        raise fail(str(e)) from None
    count = sum(len(acl.operations) for acl in wanted)
    console.print(f"applied: {count} ACL bindings on Kafka at {settings.bootstrap_servers}")


def _admin_settings(app_id: str) -> Settings:
    """Settings that log in as EVENTLEDGER_KAFKA_* say, on the cluster the environment names
    (else the local broker's address); fails in one line when it does not answer."""
    from eventledger.broker import Broker
    from eventledger.service import ServiceError, check_kafka
    from topology.settings import Settings, configured_bootstrap

    bootstrap = configured_bootstrap() or Broker().home.bootstrap
    try:
        settings = Settings.resolve(app_id=app_id, bootstrap_servers=bootstrap)
        check_kafka(settings)
    except (ValueError, ServiceError) as e:
        raise fail(str(e)) from None
    return settings
