"""The ``eventledger`` command's entry point. The core install is the client only: without the
``cli`` extra the command says in one line what to install, instead of a traceback."""

from __future__ import annotations

import sys

__all__ = ["main"]

_CLI_PACKAGES = frozenset({"typer", "rich", "click"})


def main() -> None:
    try:
        from eventledger.cli import app
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in _CLI_PACKAGES:
            raise
        sys.exit(
            f"eventledger: the command needs the cli and service extras ({error.name} is not "
            "installed): pip install 'eventledger[service,cli]'"
        )
    app()
