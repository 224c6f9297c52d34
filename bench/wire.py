"""The line protocol between the harness and its worker processes (standard library only,
since workers may run in another virtualenv): one JSON object per stdout line, each with a
``kind`` ("ready", "progress", "report"); the harness writes "go" on stdin to start."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["emit", "rss_bytes", "wait_for_go"]


def emit(kind: str, **data: Any) -> None:
    """Tell the harness something."""
    sys.stdout.write(json.dumps({"kind": kind, **data}) + "\n")
    sys.stdout.flush()


def wait_for_go() -> None:
    """Block until the harness says "go" (or closes stdin)."""
    for line in sys.stdin:
        if line.strip() == "go":
            return


def rss_bytes() -> int:
    """This process's resident set size (Linux), without psutil."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")
