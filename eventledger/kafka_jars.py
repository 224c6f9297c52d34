"""The official Apache Kafka jars, resolved from Maven Central through ``mvn`` into a per-user
cache once, and shared by the single broker and the local cluster."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "default_cache_dir",
    "require_tool",
    "resolve_jars",
]

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"


class BrokerError(RuntimeError):
    """A problem the user can fix (no Java, port taken, download failed); one clear line."""


def default_cache_dir() -> Path:
    """``$EVENTLEDGER_CACHE`` or ``$XDG_CACHE_HOME/eventledger`` or ``~/.cache/eventledger``."""
    explicit = os.environ.get("EVENTLEDGER_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "eventledger"


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>eventledger.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def require_tool(tool: str, what: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"{tool} not found on PATH: {what}")
    return path


def resolve_jars(cache_dir: Path | None = None, version: str = KAFKA_VERSION) -> Path:
    """Return the folder holding the broker's jars, resolving them with Maven on first use.

    The folder is complete iff its ``.complete`` marker exists; a failed or interrupted
    resolution leaves no marker and is redone from scratch next time.
    """
    root = (cache_dir or default_cache_dir()) / f"kafka-{version}"
    libs = root / "libs"
    if (root / ".complete").exists():
        return libs
    mvn = require_tool("mvn", "install Apache Maven to download the Kafka broker jars")
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    (root / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
    log.info("resolving Apache Kafka %s from Maven Central into %s", version, root)
    started = time.monotonic()
    proc = subprocess.run(
        [
            mvn, "-B", "-q", "-f", str(root / "pom.xml"),
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        detail = next(
            (ln for ln in proc.stdout.splitlines() if "[ERROR]" in ln),
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output",
        )
        raise BrokerError(f"could not download Apache Kafka {version} with Maven: {detail}")
    (root / ".complete").write_text(f"{time.time()}\n")
    log.info("resolved %d jars in %.1fs", len(list(libs.glob("*.jar"))), time.monotonic() - started)
    return libs
