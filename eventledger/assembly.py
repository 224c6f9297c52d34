"""The service assembled: the one place that names the aggregate the actors run.

``actors/`` runs any aggregate (``topology.protocol.Aggregate``) and never imports the
domain; this module hands it the ledger. A deployment, the demo, the fault suite and the
benchmarks all deploy through here (the one deployment path, ``actors.deployment``: the
coordinator, its partition actors and their restart policy), so they run the same code.
"""

from __future__ import annotations

from typing import Any

from actors.deployment import deploy_coordinator
from ledger.aggregate import LEDGER
from topology.protocol import Aggregate
from topology.settings import Settings

__all__ = ["AGGREGATE", "deploy_service"]

AGGREGATE: Aggregate = LEDGER
"""The aggregate of the service: accounts (``ledger``)."""


def deploy_service(
    settings: Settings, *, tick_seconds: float = 0.5, wait: bool = True, timeout: float = 180.0
) -> Any:
    """The coordinator of ``settings`` running the ledger (found if it runs already); it
    deploys and supervises the partition actors. Returns its handle."""
    return deploy_coordinator(
        settings, AGGREGATE, tick_seconds=tick_seconds, wait=wait, timeout=timeout
    )
