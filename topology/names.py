"""One place names things: Ray actor names, transactional ids, consumer groups and local
state directories, all derived from the application id (topic names and partition counts
are ``topology.topics.TopicLayout``'s, the other half of this place).

Invariant: nothing else in the code mints such a name; two parts of the system that must
agree on a name (the coordinator that creates a shadow and the code that fences it, the
client that finds a partition actor and the supervisor that names it) both ask ``Names``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from topology.settings import Settings

__all__ = ["NAMESPACE", "Names"]

NAMESPACE = "eventledger"
"""The Ray namespace of every named actor of every application."""


@dataclass(frozen=True)
class Names:
    """The names of one application (``app_id``)."""

    app_id: str

    @classmethod
    def of(cls, settings: Settings) -> Names:
        return cls(settings.app_id)

    # -- Ray actors ------------------------------------------------------------------------

    def partition_actor(self, partition: int) -> str:
        """The writer of ``partition`` (member 0)."""
        return self.member_actor(partition, 0)

    def member_actor(self, partition: int, member: int) -> str:
        """Member ``member`` of ``partition``: 0 is the writer, ``1..`` its standbys."""
        base = f"{self.app_id}-partition-{partition}"
        return base if member == 0 else f"{base}.{member}"

    @property
    def coordinator_actor(self) -> str:
        return f"{self.app_id}-coordinator"

    def shadow_actor(self, partition: int) -> str:
        return f"{self.app_id}-rebuild-{partition}"

    def history_actor(self, partition: int) -> str:
        return f"{self.app_id}-history-{partition}"

    @property
    def http_app(self) -> str:
        """The Ray Serve application of the HTTP API."""
        return f"{self.app_id}-http"

    @property
    def prefix(self) -> str:
        """What every transactional id and every consumer group but ``commands_group``
        begins with (Kafka ACLs grant them by this prefix)."""
        return f"{self.app_id}-"

    # -- transactional ids (one writer each; a new one fences the old) -----------------------

    def partition_txn(self, partition: int) -> str:
        return f"{self.prefix}{partition}"

    @property
    def coordinator_txn(self) -> str:
        return f"{self.prefix}coordinator"

    def shadow_txn(self, partition: int) -> str:
        return f"{self.prefix}rebuild-{partition}"

    # -- consumer groups (never committed to: they only name the clients) --------------------

    @property
    def commands_group(self) -> str:
        return self.app_id

    def group(self, role: str, *, unique: bool = False) -> str:
        """The group of a reader ``role`` (``restore``, ``ids``, ``offsets``, ``replay``,
        ``rebuild``, ``control``, ``audit``, ``client``...); ``unique`` adds a random suffix
        (a reader that must not share a group with another instance of itself)."""
        if unique:
            return f"{self.group_prefix(role)}{uuid.uuid4().hex[:8]}"
        return f"{self.prefix}{role}"

    def group_prefix(self, role: str) -> str:
        """What every unique group of reader ``role`` begins with."""
        return f"{self.prefix}{role}-"

    # -- local state ------------------------------------------------------------------------

    def state_dir(self, settings: Settings) -> Path:
        """This application's directory under ``settings.state_dir``."""
        return Path(settings.state_dir).expanduser() / self.app_id

    def ids_dir(self, settings: Settings, partition: int, member: int = 0) -> Path:
        """The id memory of member ``member`` of ``partition`` (each member keeps its own)."""
        base = f"ids-{partition}"
        return self.state_dir(settings) / (base if member == 0 else f"{base}.{member}")

    def history_dir(self, settings: Settings, partition: int) -> Path:
        return self.state_dir(settings) / f"history-{partition}"
