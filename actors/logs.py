"""The log lines of an actor's process: timestamped, with the logger's name.

Ray's workers leave the root logger without a handler, so Python's last resort printed bare
messages (no time) into the worker's ``.err`` file, and a fault's timeline could not be read
back from them. ``timestamped`` gives the root logger a handler once per process (never a
second one, nor one over a handler the process already has): WARNING and up from any logger,
INFO from this project's packages.
"""

from __future__ import annotations

import logging

__all__ = ["timestamped"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OURS = ("actors", "topology", "eventledger")


def timestamped() -> None:
    """Log with timestamps in this process, unless its root logger already has a handler."""
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(level=logging.WARNING, format=FORMAT)
    for name in _OURS:
        logging.getLogger(name).setLevel(logging.INFO)
