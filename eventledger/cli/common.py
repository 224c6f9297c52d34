"""What the command modules share: the consoles, the error exit and the ``--app`` option."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error on stderr; the caller raises the returned exit (code 1)."""
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


AppOption = Annotated[
    str | None,
    typer.Option(
        "--app", envvar="EVENTLEDGER_APP_ID", help="Application id (default: eventledger)."
    ),
]


def resolve_app_id(app_id: str | None) -> str:
    """The application id ``--app`` names, else the settings' default."""
    from topology.settings import Settings

    return Settings.resolve(app_id=app_id, bootstrap_servers="-").app_id
