"""The ``eventledger`` console script."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from eventledger.broker import Broker, BrokerError
from eventledger.service import ServiceError

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
broker_app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka broker.")
app.add_typer(broker_app, name="broker")
transfers_app = typer.Typer(help="Money in flight: list it, settle a lost leg by hand.")
app.add_typer(transfers_app, name="transfers")
console = Console()
errors = Console(stderr=True, soft_wrap=True)

NOT_RUNNING_EXIT = 3
"""``status``'s exit code when a partition is not running (as ``broker status``'s)."""


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"eventledger {version('eventledger')}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", envvar="EVENTLEDGER_VERBOSE", help="Log at INFO, Ray's lines too."
        ),
    ] = False,
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """An event-sourced ledger service on Apache Kafka and Ray.

    Output is for reading (or JSON where asked); errors go to stderr; Ray's own log lines
    go to its log files unless -v is given."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


@broker_app.command("start")
def broker_start() -> None:
    """Start the local broker (idempotent) and print its bootstrap address."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        console.print(f"KAFKA_BOOTSTRAP_SERVERS is set: using {external}, no broker started")
        return
    broker = Broker()
    was_running = broker.pid() is not None
    started = time.monotonic()
    try:
        with console.status("starting Apache Kafka (first run downloads its jars)..."):
            bootstrap = broker.start()
    except BrokerError as e:
        raise _fail(str(e)) from None
    verb = "already running" if was_running else f"started in {time.monotonic() - started:.1f}s"
    console.print(f"broker {verb}: [bold]{bootstrap}[/] (data in {broker.home.path})")


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the local broker (SIGTERM, wait, then kill)."""
    stopped = Broker().stop()
    console.print("broker stopped" if stopped else "no broker was running")


@broker_app.command("status")
def broker_status() -> None:
    """Say whether the local broker runs and answers."""
    broker = Broker()
    pid = broker.pid()
    if pid is None:
        console.print("broker: not running")
        raise typer.Exit(code=3)
    answers = "answers" if broker.running() else "does NOT answer"
    console.print(f"broker: pid {pid} at {broker.home.bootstrap}, {answers} metadata requests")


AppOption = Annotated[
    str | None,
    typer.Option(
        "--app", envvar="EVENTLEDGER_APP_ID", help="Application id (default: eventledger)."
    ),
]


def _app_id(app_id: str | None) -> str:
    from topology.settings import Settings

    return Settings.resolve(app_id=app_id, bootstrap_servers="-").app_id


@app.command()
def serve(
    *,
    app_id: AppOption = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            envvar="EVENTLEDGER_PARTITIONS",
            help="Kafka partitions = partition actors (default: 4).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every actor.")] = 180.0,
    http: Annotated[
        bool,
        typer.Option(
            "--http", help="Also deploy the HTTP API (Ray Serve); return once it answers."
        ),
    ] = False,
    port: Annotated[
        int, typer.Option(envvar="EVENTLEDGER_HTTP_PORT", help="The API's port.")
    ] = 8000,
    host: Annotated[
        str, typer.Option(envvar="EVENTLEDGER_HTTP_HOST", help="The API's address (0.0.0.0: all).")
    ] = "127.0.0.1",
    replicas: Annotated[
        int, typer.Option(envvar="EVENTLEDGER_HTTP_REPLICAS", help="API replicas.")
    ] = 1,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this certificate chain (PEM); needs --tls-key."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's key (PEM).")] = None,
    tokens_file: Annotated[
        str | None,
        typer.Option(
            envvar="EVENTLEDGER_API_TOKENS_FILE",
            help="The API's token hashes (`eventledger token` mints them); "
            "EVENTLEDGER_API_TOKENS adds lines.",
        ),
    ] = None,
    insecure_dev: Annotated[
        bool,
        typer.Option(
            "--insecure-dev", help="Run the API WITHOUT authentication (a local demo only)."
        ),
    ] = False,
) -> None:
    """Deploy the service (coordinator and partition actors) and return.

    Ray: RAY_ADDRESS, else the local Ray instance (a head is started when there is none).
    Kafka: KAFKA_BOOTSTRAP_SERVERS, else the local broker (started when needed).
    With --http, the HTTP API too (bearer tokens required unless --insecure-dev)."""
    from actors.deployment import find_coordinator
    from eventledger.assembly import deploy_service
    from eventledger.http.serving import Tls
    from eventledger.report import print_status
    from eventledger.runtime import ensure_broker
    from eventledger.service import check_kafka, connect_ray
    from topology.settings import Settings

    if (tls_cert is None) != (tls_key is None):
        raise _fail("--tls-cert and --tls-key go together")
    tls = Tls(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    try:
        tokens = _tokens(tokens_file, insecure_dev) if http else None
        with console.status("finding Kafka..."):
            bootstrap = ensure_broker()
            settings = Settings.resolve(
                app_id=app_id, bootstrap_servers=bootstrap, partitions=partitions
            )
            check_kafka(settings)
        with console.status("connecting to Ray..."):
            how = connect_ray(start_local=True)
        import ray

        existing = find_coordinator(settings.app_id) is not None
        with console.status(f"deploying {settings.app_id} on {how}..."):
            handle = deploy_service(settings, timeout=timeout)
            status = ray.get(handle.status.remote(), timeout=60)
        url = None
        if tokens is not None:
            from eventledger.http.serving import deploy_http

            with console.status(f"deploying the HTTP API on port {port}..."):
                url = deploy_http(
                    settings, tokens, port=port, host=host, replicas=replicas, tls=tls
                )
    except (ServiceError, BrokerError, TimeoutError, ValueError, OSError) as e:
        raise _fail(str(e)) from None
    verb = "already served" if existing else "serving"
    console.print(f"{settings.app_id}: {verb} on {how}")
    print_status(console, status)
    if url is not None:
        console.print(f"HTTP API: {url} (OpenAPI docs at {url}/docs)")


def _tokens(tokens_file: str | None, insecure_dev: bool) -> Any:
    """The API's token table; --insecure-dev is the only way to none, and it says so."""
    from eventledger.http.auth import TokenTable, load_tokens
    from eventledger.http.serving import INSECURE_WARNING

    if insecure_dev:
        errors.print(f"[bold red]{INSECURE_WARNING}[/]")
        return TokenTable(insecure=True)
    return load_tokens(tokens_file)


@app.command()
def token(
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", "-s", help="read, write, mint and/or operate (default: read and write)."
        ),
    ] = None,
    name: Annotated[
        str, typer.Option(help="The principal: recorded with every command the token sends.")
    ] = "",
    accounts: Annotated[
        list[str] | None,
        typer.Option(
            "--accounts", "-a", help="Account patterns the token may touch (* matches any run)."
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime, such as 90d or 12h (default: no expiry).")
    ] = None,
) -> None:
    """Mint an API token: prints the token (line 1: give it to the client; it is stored
    nowhere) and its line for the tokens file (line 2: a hash, the only form to store)."""
    from eventledger.http.auth import Scope, mint_token

    try:
        scopes = frozenset(Scope(s) for s in (scope or ["read", "write"]))
    except ValueError:
        raise _fail(f"scopes are {', '.join(Scope)}") from None
    patterns = [p for item in accounts or ["*"] for p in item.split(",") if p]
    try:
        until = None if expires is None else datetime.now(UTC) + _lifetime(expires)
        secret, line = mint_token(scopes, name or f"token-{secrets.token_hex(4)}", patterns, until)
    except ValueError as e:
        raise _fail(str(e)) from None
    sys.stdout.write(f"{secret}\n{line}\n")


def _lifetime(text: str) -> timedelta:
    """``90d``, ``12h`` or ``30m`` as a duration; ValueError otherwise."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise ValueError(f"--expires takes a lifetime such as 90d, 12h or 30m, got {text!r}")
    return timedelta(**{units[unit]: int(number)})


@app.command()
def stop(
    app_id: AppOption = None,
    everything: Annotated[
        bool,
        typer.Option("--all", help="Also shut Ray Serve down, whatever else it serves."),
    ] = False,
) -> None:
    """Stop the service cleanly.

    The HTTP API is removed (and Serve with it when it serves nothing else), every partition
    actor finishes its batch, then the coordinator goes. The topics (and so the state) stay."""
    from actors.deployment import stop_service
    from eventledger.http.serving import stop_http
    from eventledger.service import connect_ray

    name = _app_id(app_id)
    try:
        connect_ray()
        with console.status(f"stopping {name}..."):
            api = stop_http(name, shutdown=everything)
            stopped = stop_service(name)
    except ServiceError as e:
        raise _fail(str(e)) from None
    if api:
        console.print(f"{name}: HTTP API removed")
    console.print(f"{name}: stopped" if stopped else f"{name}: was not running")


@app.command()
def status(
    app_id: AppOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per partition, one per line.")
    ] = False,
) -> None:
    """Show the service: one row per partition.

    Node, actor state, snapshot generation, aggregates held, committed command offset, lag,
    restarts and the age of the last commit. Exits 3 when a partition is not running
    (neither running nor rebuilding), 1 when the service cannot be reached: a probe."""
    from eventledger.report import json_rows, not_running, print_status
    from eventledger.service import service_status

    try:
        report = service_status(_app_id(app_id))
    except ServiceError as e:
        raise _fail(str(e)) from None
    if as_json:
        for line in json_rows(report):
            sys.stdout.write(line + "\n")
    else:
        print_status(console, report)
    stopped = not_running(report)
    if stopped:
        errors.print(f"not running: partition{'s' if len(stopped) > 1 else ''} {stopped}")
        raise typer.Exit(code=NOT_RUNNING_EXIT)


@app.command()
def unblock(
    partition: Annotated[int, typer.Option("--partition", "-p", help="The blocked partition.")],
    app_id: AppOption = None,
    from_offset: Annotated[
        int | None,
        typer.Option(
            help="Resume the partition's commands at this offset (the ones before it are "
            "never processed). Without it, the partition just tries again."
        ),
    ] = None,
) -> None:
    """Start a blocked partition again (`status` says why it is blocked and what to do)."""
    from actors.ray_state import partition_actor
    from eventledger.service import connect_ray

    name = _app_id(app_id)
    try:
        connect_ray()
        import ray

        try:
            handle = partition_actor(name, partition)
        except ValueError:
            raise ServiceError(f"no partition {partition} of {name!r} is running") from None
        status = ray.get(handle.unblock.remote(from_offset), timeout=600)
    except ServiceError as e:
        raise _fail(str(e)) from None
    except Exception as e:  # refused by the actor: not blocked, or an offset outside the log
        raise _fail(str(e).strip().splitlines()[-1]) from None
    console.print(f"{name} partition {partition}: {status}")


@app.command()
def rebuild(
    app_id: AppOption = None,
    partition: Annotated[
        list[int] | None, typer.Option("--partition", "-p", help="Only this partition.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the switch.")] = 3600.0,
) -> None:
    """Rebuild state from the events, online.

    A shadow per partition replays the events into a new snapshot generation while the live
    actor serves; a short pause replays the tail and switches. Shows events replayed per
    partition, the rate and the pause."""
    from eventledger.rebuild_view import follow_rebuilds
    from eventledger.report import print_rebuilds
    from eventledger.service import connect_ray, coordinator_or_fail
    from topology.control import RebuildPhase

    name = _app_id(app_id)
    try:
        connect_ray()
        import ray

        handle = coordinator_or_fail(name)
        requested = sorted(set(partition)) if partition else None
        started = ray.get(handle.rebuild.remote(requested), timeout=60)
        final = follow_rebuilds(console, handle, requested, started, timeout=timeout)
    except (ServiceError, TimeoutError) as e:
        raise _fail(str(e)) from None
    except Exception as e:  # a refused request (e.g. no such partition)
        raise _fail(str(e).strip().splitlines()[-1]) from None
    print_rebuilds(console, final)
    if any(r.phase is not RebuildPhase.DONE for r in final.values()):
        raise _fail("not every partition was rebuilt")


@app.command()
def demo(
    *,
    accounts: Annotated[int, typer.Option(help="Accounts to open.")] = 2_000,
    commands: Annotated[int, typer.Option(help="Deposits and withdrawals to send.")] = 20_000,
    partitions: Annotated[int, typer.Option(help="Kafka partitions = partition actors.")] = 4,
    window: Annotated[int, typer.Option(help="Commands in flight at most.")] = 256,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 7,
    keep: Annotated[
        bool,
        typer.Option(help="Keep the service running (on a local Ray head) for status/rebuild."),
    ] = False,
) -> None:
    """Run the service on the local broker and Ray, drive a workload, check the money."""
    from eventledger.demo import run_demo
    from eventledger.report import print_demo

    try:
        report = run_demo(
            accounts=accounts,
            commands=commands,
            partitions=partitions,
            window=window,
            seed=seed,
            keep=keep,
        )
    except (BrokerError, ServiceError, TimeoutError) as e:
        raise _fail(str(e)) from None
    print_demo(console, report)
    if report.kept:
        console.print(
            f"the service keeps running: [bold]eventledger status --app {report.app_id}[/], "
            f"[bold]eventledger rebuild --app {report.app_id}[/], "
            f"[bold]eventledger stop --app {report.app_id}[/]"
        )
    if not report.money_ok:
        raise _fail("the money check failed")


@app.command()
def torture(
    *,
    seconds: Annotated[float, typer.Option(help="Seconds of workload under faults.")] = 60.0,
    faults: Annotated[
        str,
        typer.Option(
            help="Faults, comma-separated: kill,stop,broker,coordinator,rebuild,node,hostile."
        ),
    ] = "kill,broker",
    accounts: Annotated[int, typer.Option(help="Accounts (2 of them very busy).")] = 40,
    clients: Annotated[int, typer.Option(help="Concurrent client threads.")] = 48,
    seed: Annotated[int, typer.Option(help="Seed of the workload and the nemesis.")] = 1,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write the machine-readable result here.")
    ] = None,
    log: Annotated[
        str,
        typer.Option(
            help="File for stderr during the run (Kafka clients log every refused "
            "connection while the broker is down); default: in the temporary directory."
        ),
    ] = "",
    keep: Annotated[
        str | None,
        typer.Option(
            help="Keep the broker's data and logs and the actors' state in this new directory."
        ),
    ] = None,
) -> None:
    """Run the fault suite: a bank workload under faults, then check exactly-once.

    Starts its own broker (temporary directory, free ports) and Ray, deploys the service
    through the coordinator, drives many clients retrying the same ids with short timeouts
    while the nemesis kills, stops and restarts things, then checks the committed events
    against every reply: lost, duplicate, phantom, crossed, unanswered, overdraft, totals.
    Exits non-zero on any anomaly."""
    import json
    import tempfile

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from eventledger.torture.nemesis import parse_faults
    from eventledger.torture.report import print_result
    from eventledger.torture.run import Snapshot, TortureConfig, run_torture

    try:
        selected = tuple(parse_faults(faults))
    except ValueError as e:
        raise _fail(str(e)) from None
    if seconds <= 0 or accounts < 4 or clients < 2:
        raise _fail("need --seconds > 0, --accounts >= 4 and --clients >= 2")
    config = TortureConfig(
        seconds=seconds,
        faults=selected,
        accounts=accounts,
        clients=clients,
        seed=seed,
        keep=Path(keep) if keep else None,
    )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("starting", total=seconds, detail="")

    def show(s: Snapshot) -> None:
        bar.update(
            task,
            description=s.phase,
            completed=min(s.elapsed, s.seconds),
            detail=f"{s.ops:,} commands · {s.answered:,} answered · {s.faults} faults",
        )

    log = log or str(Path(tempfile.gettempdir()) / "eventledger-torture.log")
    try:
        with _stderr_to(Path(log)), bar:
            result = run_torture(config, on_progress=show)
    except (BrokerError, ServiceError, TimeoutError, RuntimeError) as e:
        raise _fail(f"{e} (see {log})") from None
    print_result(console, result)
    console.print(f"stderr of the run (Kafka clients, Ray): {log}")
    if json_out:
        Path(json_out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        console.print(f"result written to {json_out}")
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def simulate(
    *,
    seeds: Annotated[int, typer.Option(help="How many seeds to run (from --first).")] = 100,
    first: Annotated[int, typer.Option(help="The first seed.")] = 0,
    seed: Annotated[
        int | None, typer.Option(help="Replay this one seed (overrides --seeds, --first).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Ops drawn per seed.")] = 2000,
    partitions: Annotated[int, typer.Option(help="Partitions of the simulated ledger.")] = 3,
    workers: Annotated[
        int, typer.Option(help="Processes to run seeds on (default: the cores).")
    ] = 0,
    shrink: Annotated[
        bool, typer.Option(help="Shorten a failing seed's trace before printing it.")
    ] = True,
) -> None:
    """Run the deterministic simulator: the ledger's pure core over in-memory Kafka logs,
    from seeds, with crashes, aborts, clock jumps and legal adversarial clients, checking
    the invariants after every step. Exits non-zero on a violation, printing its trace and
    the command that replays it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from eventledger.sim.report import print_failure, print_summary, replay_command
    from eventledger.sim.run import Outcome, config_for, run_seeds
    from eventledger.sim.run import shrink as shorten

    if steps < 1 or seeds < 1 or partitions < 1:
        raise _fail("need --steps, --seeds and --partitions >= 1")
    chosen = [seed] if seed is not None else list(range(first, first + seeds))
    processes = workers or min(os.cpu_count() or 1, len(chosen))
    bar = Progress(
        TextColumn("seeds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=True,
    )
    task = bar.add_task("seeds", total=len(chosen), detail="")
    failed = 0

    def done(outcome: Outcome) -> None:
        nonlocal failed
        failed += outcome.violation is not None
        bar.update(task, advance=1, detail=f"{failed} failing")

    with bar:
        summary = run_seeds(chosen, steps, partitions=partitions, workers=processes, on_done=done)
    print_summary(console, summary)
    for failure in summary.failures[:3]:
        replay = replay_command(failure, steps, partitions)
        shown = failure
        if shrink and failure.seed is not None:
            shown = shorten(failure, config_for(failure.seed, partitions))
        print_failure(console, shown, replay)
    if summary.failures:
        raise typer.Exit(code=1)


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


@transfers_app.callback(invoke_without_command=True)
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
        raise _fail(str(e)) from None
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


@transfers_app.command("settle")
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
        raise _fail("say --refund (the money goes back to the source) or --credit")
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
        raise _fail(str(e)) from None
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


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's stderr (file descriptor 2: librdkafka and Ray write there
    directly) to ``path`` for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
