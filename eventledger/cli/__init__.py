"""The ``eventledger`` console script."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from eventledger.cli import broker, checks, security, service, transfers
from eventledger.cli.common import console

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
# Each module has its own Typer; the unnamed ones merge their commands into this one (in this
# order in --help), so no command module imports this package back.
app.add_typer(service.app)
app.add_typer(checks.app)
app.add_typer(security.app)
app.add_typer(broker.app, name="broker")
app.add_typer(transfers.app, name="transfers")


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
