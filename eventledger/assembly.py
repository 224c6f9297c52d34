"""The service assembled: the one place that names the aggregate the actors run.

``actors/`` runs any aggregate (``topology.protocol.Aggregate``) and never imports the
domain; this module hands it the ledger. A deployment, the demo, the fault suite and the
benchmarks all deploy through here (the one deployment path, ``actors.deployment``: the
coordinator, its partition actors and their restart policy), so they run the same code.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

from actors.deployment import deploy_coordinator
from ledger import LEDGER, Account, AccountView, Command, Event, InternalCommand, RejectionCode
from topology.codes import FlowRefusal, Vocabulary
from topology.protocol import Aggregate, Saga, Tallied
from topology.settings import Settings

__all__ = ["AGGREGATE", "CODES", "Code", "deploy_service"]

AGGREGATE: Aggregate[Command, Event, Account, AccountView] = LEDGER
"""The aggregate of the service: accounts (``ledger``), its types checked against the flow's
protocols here, where the domain meets the flow (also as a saga and a tallied aggregate)."""

Code: TypeAlias = RejectionCode | FlowRefusal
"""A refusal code of the service: the ledger's own, or the flow's."""

CODES: Final[Vocabulary[RejectionCode]] = Vocabulary(RejectionCode)
"""The service's refusal vocabulary: every code a reply may carry, parsed back into its enum
(`CODES.code_of(reply)`)."""

_SAGA: Saga[Command | InternalCommand, Event, Account, InternalCommand] = LEDGER
_TALLIED: Tallied[Event] = LEDGER


def deploy_service(
    settings: Settings, *, tick_seconds: float = 0.5, wait: bool = True, timeout: float = 180.0
) -> Any:
    """The coordinator of ``settings`` running the ledger (found if it runs already); it
    deploys and supervises the partition actors. Returns its handle."""
    return deploy_coordinator(
        settings, AGGREGATE, tick_seconds=tick_seconds, wait=wait, timeout=timeout
    )
