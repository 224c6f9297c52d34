"""Worker processes speaking ``bench.wire``: start, wait for a kind of message, stop, collect
the final report. A worker's stderr goes to a log file under the run's log folder."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["REPO", "Worker", "WorkerError"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent


class WorkerError(RuntimeError):
    """A worker failed, or said nothing in time."""


class Worker:
    """One child process; ``python`` runs ``-m module`` with ``config`` as JSON argument, or
    ``argv`` runs as given (a non-Python worker speaking the same line protocol)."""

    def __init__(
        self,
        name: str,
        python: Path | str,
        module: str,
        config: dict[str, Any],
        log_dir: Path,
        *,
        argv: list[str] | None = None,
    ) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._stderr: IO[bytes] = self.log_path.open("wb")
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        env.pop("VIRTUAL_ENV", None)
        self._proc = subprocess.Popen(
            argv or [str(python), "-m", module, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=REPO,
            env=env,
            text=True,
            bufsize=1,
        )
        self._latest: dict[str, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                log.debug("%s: %s", self.name, line.rstrip())
                continue
            with self._arrived:
                self._latest[message.get("kind", "?")] = message
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def latest(self, kind: str) -> dict[str, Any] | None:
        with self._arrived:
            return self._latest.get(kind)

    def wait_for(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first message of ``kind``; WorkerError if the worker exits or times out."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while kind not in self._latest:
                if self._proc.poll() is not None and not self._reader.is_alive():
                    raise WorkerError(f"{self.name} exited ({self._proc.returncode}) {self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerError(f"{self.name} sent no {kind!r} in {timeout:.0f}s")
                self._arrived.wait(min(left, 0.5))
            return self._latest[kind]

    def go(self) -> None:
        self.say("go")

    def say(self, line: str) -> None:
        """Write one line to the worker's stdin ("go", or "stop" for those that take it)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def check_alive(self) -> None:
        if self._proc.poll() is not None and "report" not in self._latest:
            raise WorkerError(f"{self.name} exited ({self._proc.returncode}) {self.tail()}")

    def terminate(self) -> None:
        if self.alive():
            self._proc.send_signal(signal.SIGTERM)

    def finish(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the worker to exit and return its report."""
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise WorkerError(f"{self.name} did not exit in {timeout:.0f}s {self.tail()}") from None
        self._reader.join(5)
        self._stderr.close()
        report = self.latest("report")
        if code != 0 or report is None:
            raise WorkerError(f"{self.name} exited with {code} and no report {self.tail()}")
        return report

    def kill(self) -> None:
        if self.alive():
            self._proc.kill()
            self._proc.wait(10)
        if not self._stderr.closed:
            self._stderr.close()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"(log {self.log_path}):\n" + "\n".join(text) if text else f"(log {self.log_path})"
