"""The service's commands: serve, token, stop, status, unblock, rebuild, repartition."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from eventledger.broker import BrokerError
from eventledger.cli.common import AppOption, console, errors, fail, resolve_app_id
from eventledger.service import ServiceError

app = typer.Typer()

NOT_RUNNING_EXIT = 3
"""``status``'s exit code when a partition is not running (as ``broker status``'s)."""


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
        typer.Option("--http", help="Also deploy the HTTP API; return once it answers."),
    ] = False,
    port: Annotated[
        int, typer.Option(envvar="EVENTLEDGER_HTTP_PORT", help="The API's port.")
    ] = 8000,
    host: Annotated[
        str, typer.Option(envvar="EVENTLEDGER_HTTP_HOST", help="The API's address (0.0.0.0: all).")
    ] = "127.0.0.1",
    replicas: Annotated[
        int,
        typer.Option(
            envvar="EVENTLEDGER_HTTP_REPLICAS",
            help="API replicas (uvicorn: per node; Serve: in all).",
        ),
    ] = 1,
    serving: Annotated[
        str,
        typer.Option(
            envvar="EVENTLEDGER_HTTP_SERVING",
            help="How the API is served: uvicorn (workers on one shared port), proxy (Ray "
            "Serve's proxy), direct (Serve's direct ingress) or haproxy (Serve's HAProxy "
            "mode); see docs/http.md.",
        ),
    ] = "uvicorn",
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
    from eventledger.http.serving import Serving, Tls
    from eventledger.report import print_status
    from eventledger.runtime import ensure_broker
    from eventledger.service import check_kafka, connect_ray
    from topology.settings import Settings

    if (tls_cert is None) != (tls_key is None):
        raise fail("--tls-cert and --tls-key go together")
    tls = Tls(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    try:
        mode = Serving(serving)
    except ValueError:
        raise fail(f"--serving is one of {', '.join(Serving)}") from None
    if http and mode.ray_env is not None:  # read by the Ray processes a local head starts
        os.environ.setdefault(mode.ray_env, "1")
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
                    settings,
                    tokens,
                    port=port,
                    host=host,
                    replicas=replicas,
                    tls=tls,
                    serving=mode,
                )
    except (ServiceError, BrokerError, TimeoutError, ValueError, OSError) as e:
        raise fail(str(e)) from None
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
        raise fail(f"scopes are {', '.join(Scope)}") from None
    patterns = [p for item in accounts or ["*"] for p in item.split(",") if p]
    try:
        until = None if expires is None else datetime.now(UTC) + _lifetime(expires)
        secret, line = mint_token(scopes, name or f"token-{secrets.token_hex(4)}", patterns, until)
    except ValueError as e:
        raise fail(str(e)) from None
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

    name = resolve_app_id(app_id)
    try:
        connect_ray()
        with console.status(f"stopping {name}..."):
            api = stop_http(name, shutdown=everything)
            stopped = stop_service(name)
    except ServiceError as e:
        raise fail(str(e)) from None
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
        report = service_status(resolve_app_id(app_id))
    except ServiceError as e:
        raise fail(str(e)) from None
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

    name = resolve_app_id(app_id)
    try:
        connect_ray()
        import ray

        try:
            handle = partition_actor(name, partition)
        except ValueError:
            raise ServiceError(f"no partition {partition} of {name!r} is running") from None
        status = ray.get(handle.unblock.remote(from_offset), timeout=600)
    except ServiceError as e:
        raise fail(str(e)) from None
    except Exception as e:  # refused by the actor: not blocked, or an offset outside the log
        raise fail(str(e).strip().splitlines()[-1]) from None
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

    name = resolve_app_id(app_id)
    try:
        connect_ray()
        import ray

        handle = coordinator_or_fail(name)
        requested = sorted(set(partition)) if partition else None
        started = ray.get(handle.rebuild.remote(requested), timeout=60)
        final = follow_rebuilds(console, handle, requested, started, timeout=timeout)
    except (ServiceError, TimeoutError) as e:
        raise fail(str(e)) from None
    except Exception as e:  # a refused request (e.g. no such partition)
        raise fail(str(e).strip().splitlines()[-1]) from None
    print_rebuilds(console, final)
    if any(r.phase is not RebuildPhase.DONE for r in final.values()):
        raise fail("not every partition was rebuilt")


@app.command()
def repartition(
    partitions: Annotated[
        int,
        typer.Option("--partitions", "-n", help="The partition count to grow or shrink to."),
    ],
    app_id: AppOption = None,
    parallel: Annotated[int, typer.Option(help="Source partitions handing slots off at once.")] = 2,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-wait", help="Show progress until done (or only start it and return)."
        ),
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the end.")] = 3600.0,
) -> None:
    """Grow or shrink the application's partitions, online.

    To grow, the topics grow (unless drained partitions are there to take back), new
    partition actors start, and slots move from the old partitions to the new ones, a few
    at a time, while commands flow. To shrink, slots move off the partitions at or above
    the count, which stay, drained: Kafka cannot remove partitions. Shows per source
    partition the slots moved and the moves done, then a table of moves. Run again with the
    same count to follow a repartition under way. Exits 1 when it failed, was refused or
    timed out."""
    from eventledger.repartition_view import follow_repartition
    from eventledger.report import print_moves
    from eventledger.service import connect_ray, coordinator_or_fail
    from topology.control import RepartitionPhase

    name = resolve_app_id(app_id)
    try:
        connect_ray()
        import ray

        handle = coordinator_or_fail(name)
        started = ray.get(handle.repartition.remote(partitions, parallel), timeout=60)
        if not follow:
            console.print(
                f"{name}: repartition {started.from_partitions} → {started.to_partitions} "
                f"{started.phase}; follow it with `eventledger repartition --app {name} "
                f"--partitions {partitions}`"
            )
            return
        final = follow_repartition(console, handle, timeout=timeout)
    except (ServiceError, TimeoutError) as e:
        raise fail(str(e)) from None
    except Exception as e:  # refused by the coordinator (the message says why)
        raise fail(str(e).strip().splitlines()[-1]) from None
    record = final.record
    if record is None:  # pragma: no cover - follow_repartition raises first
        raise fail("the coordinator records no repartition")
    print_moves(console, record)
    if record.phase is not RepartitionPhase.DONE:
        raise fail(f"repartition {record.phase}: {record.error or 'no reason recorded'}")
