"""``eventledger transfers``: money in flight, read from Kafka, and the operator's settlement."""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer

from eventledger.broker import Broker
from eventledger.cli.common import AppOption, console, fail
from eventledger.service import ServiceError

app = typer.Typer(help="Money in flight: list it, settle a lost leg by hand.")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """Milliseconds of a duration like 30s, 10m, 2h, 1d, 250ms or 1h30m (a bare number:
    seconds). Raises ValueError."""
    t = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return round(float(t) * 1000)
    parts = _DURATION_PART.findall(t)
    if not t or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 2h or 1h30m")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in parts))


def _age(ms: int) -> str:
    s = ms // 1000
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _kafka_settings(app_id: str | None) -> Any:
    """The application's settings as Kafka knows it: its bootstrap servers (the environment,
    else the local broker when it runs) and its topics' partition count."""
    from confluent_kafka.admin import AdminClient

    from actors.kafka import admin_config
    from eventledger.service import check_kafka
    from topology.settings import Settings, configured_bootstrap
    from topology.topics import TopicKind, TopicLayout

    bootstrap = configured_bootstrap()
    if bootstrap is None:
        broker = Broker()
        if broker.pid() is None:
            raise ServiceError("no Kafka: set KAFKA_BOOTSTRAP_SERVERS, or start the local broker")
        bootstrap = broker.home.bootstrap
    settings = Settings.resolve(app_id=app_id, bootstrap_servers=bootstrap)
    check_kafka(settings)
    topic = TopicLayout.of(settings).name(TopicKind.STATE)
    found = AdminClient(admin_config(settings)).list_topics(topic, timeout=10).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise ServiceError(f"no application {settings.app_id!r} on Kafka at {bootstrap}")
    return Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=len(found.partitions)
    )


@app.callback(invoke_without_command=True)
def transfers(
    ctx: typer.Context,
    in_flight: Annotated[
        bool, typer.Option("--in-flight", help="List the transfers debited, not yet settled.")
    ] = False,
    older_than: Annotated[
        str, typer.Option(help="Only those at least this old (30s, 10m, 2h, 1d).")
    ] = "0",
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per transfer, one per line.")
    ] = False,
    app_id: AppOption = None,
) -> None:
    """Money in flight, read from Kafka: `--in-flight` lists it (oldest first; lost: a leg
    set aside that only an operator can settle); `settle` settles a lost leg."""
    if ctx.invoked_subcommand is not None:
        return
    if not in_flight:
        console.print(ctx.get_help())
        return
    import msgspec
    from confluent_kafka import KafkaException
    from rich.table import Table

    from eventledger.transfers import in_flight as list_in_flight

    try:
        min_age = parse_duration_ms(older_than)
        with console.status("reading the state and dead-letter topics..."):
            rows = list_in_flight(_kafka_settings(app_id), older_than_ms=min_age)
    except (ServiceError, ValueError, KafkaException) as e:
        raise fail(str(e)) from None
    if as_json:
        for row in rows:
            sys.stdout.write(msgspec.json.encode(row).decode() + "\n")
        return
    table = Table(title=f"{len(rows)} transfer{'' if len(rows) == 1 else 's'} in flight")
    for column in ("source", "id", "target", "amount", "age", "lost?"):
        table.add_column(column, justify="right" if column in ("amount", "age") else "left")
    for r in rows:
        lost = ", ".join(f"{x.leg} on p{x.partition} (dlq {x.dlq_offset})" for x in r.lost)
        table.add_row(
            r.source,
            r.transfer_id,
            r.target,
            f"{r.amount:,}",
            _age(r.age_ms),
            f"[bold red]lost: {lost}[/]" if lost else "no",
        )
    console.print(table)
    if any(r.lost for r in rows):
        console.print(
            "settle a lost one: eventledger transfers settle ID --source ACCOUNT "
            "(--refund | --credit) --reason TEXT"
        )


@app.command("settle")
def transfers_settle(
    transfer_id: Annotated[str, typer.Argument(help="The transfer id.")],
    *,
    source: Annotated[str, typer.Option(help="The account it was debited from.")],
    reason: Annotated[str, typer.Option(help="Why: recorded with the settlement.")],
    refund: Annotated[
        bool | None,
        typer.Option(
            "--refund/--credit",
            help="Send the money back to the source, or deliver the leg as it was.",
        ),
    ] = None,
    operator: Annotated[
        str | None, typer.Option(help="Who settles it (default: the OS user); recorded.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait to see it done.")] = 30.0,
    app_id: AppOption = None,
) -> None:
    """Settle the lost leg(s) of a transfer, once, as TransferForced events naming who and why.

    Refused when nothing of the transfer is lost (its legs are still on their way)."""
    import getpass

    from confluent_kafka import KafkaException

    from eventledger.transfers import settle

    if refund is None:
        raise fail("say --refund (the money goes back to the source) or --credit")
    try:
        with console.status(f"settling transfer {transfer_id} of {source}..."):
            done = settle(
                _kafka_settings(app_id),
                source=source,
                transfer_id=transfer_id,
                refund=refund,
                operator=operator if operator is not None else getpass.getuser(),
                reason=reason,
                wait_s=wait,
            )
    except (ServiceError, ValueError, RuntimeError, KafkaException) as e:
        raise fail(str(e)) from None
    verb = "refunded to its source" if done.refund else "credited as it was"
    for leg in done.legs:
        console.print(
            f"{leg.leg} to {leg.aggregate} (partition {leg.partition}): {verb}, "
            f"by {done.operator}: {done.reason}"
        )
    if done.settled:
        console.print(f"transfer {transfer_id} of {source}: settled")
    else:
        console.print(
            f"[yellow]transfer {transfer_id} of {source}: sent, not yet seen done after "
            f"{wait:.0f}s (is partition {done.legs[0].partition} running?)[/]"
        )
