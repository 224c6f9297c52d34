"""The Quix Streams peer's virtualenv, ``bench/.venv-quix`` (git-ignored), built on demand.

Quix Streams 3.28.1 pins confluent-kafka<2.13 and pydantic<2.14, which conflict with the
service's own pins, so it gets a venv of its own from ``bench/requirements-quix.txt``. Our code
(``ledger``, ``topology``, ``bench``) is put on its ``PYTHONPATH`` by the worker launcher
instead of being installed there. Idempotent: a stamp named after the requirements' hash
marks a finished install.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from pathlib import Path

from bench.procs import REPO

__all__ = ["QUIX_VENV", "REQUIREMENTS", "ensure_quix_venv"]

log = logging.getLogger(__name__)

QUIX_VENV = REPO / "bench" / ".venv-quix"
REQUIREMENTS = REPO / "bench" / "requirements-quix.txt"


def ensure_quix_venv(venv: Path = QUIX_VENV) -> Path:
    """The venv's python, after creating the venv and installing the pins if needed."""
    python = venv / "bin" / "python"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    stamp = venv / f".installed-{digest}"
    if stamp.exists() and python.exists():
        return python
    log.info("building the Quix Streams virtualenv in %s", venv)
    if not python.exists():
        _run([sys.executable, "-m", "venv", "--clear", str(venv)])
    _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    _run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)])
    for old in venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return python


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{tail}")
