"""An actor's process logs with timestamps (``actors.logs.timestamped``) once, and leaves a
handler the process already has alone. Each case runs in a fresh interpreter: the root
logger there starts bare, as in a Ray worker (pytest's own handlers sit on this one's)."""

from __future__ import annotations

import re
import subprocess
import sys

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.M)


def _stderr(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stderr


def test_a_bare_process_logs_each_line_once_with_its_time() -> None:
    err = _stderr(
        "import logging\n"
        "from actors.logs import timestamped\n"
        "timestamped(); timestamped()\n"
        "logging.getLogger('actors.partition').info('restored')\n"
        "logging.getLogger('confluent_kafka').info('chatter')\n"
        "logging.getLogger('ray').warning('warned')\n"
    )
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert all(STAMP.match(line) for line in lines), err
    assert lines[0].endswith("INFO actors.partition: restored")
    assert lines[1].endswith("WARNING ray: warned")


def test_a_handler_already_there_is_left_alone() -> None:
    err = _stderr(
        "import logging\n"
        "logging.basicConfig(format='mine %(message)s')\n"
        "from actors.logs import timestamped\n"
        "timestamped()\n"
        "logging.getLogger('actors.partition').warning('stopped')\n"
    )
    assert err == "mine stopped\n"
