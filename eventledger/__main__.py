"""``python -m eventledger``: the console script, for environments without it on PATH
(e.g. ``ray job submit --working-dir . -- python -m eventledger serve``)."""

from eventledger.cli import app

app()
