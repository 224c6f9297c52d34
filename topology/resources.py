"""What a partition actor reserves on a Ray node: a slot of the custom partition resource and
memory sized from the aggregates it holds.

Ray places an actor only on a node that offers its custom resource, so a cluster declares
the resource on the nodes meant for partitions (worker node types; never the head, see
``cluster.yaml``), and a single-node Ray started by eventledger declares it on itself
(``LOCAL_SLOTS``). The memory reservation is an admission rule, not a limit Ray enforces:
it keeps Ray from packing more state onto a node than it has memory for.
"""

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_RESOURCE", "LOCAL_SLOTS", "Reservation", "reservation"]

DEFAULT_RESOURCE: Final = "eventledger_partition"
LOCAL_SLOTS: Final = 1024
"""The partition slots a local single-node Ray offers (far more than any local run needs)."""
_MB: Final = 1024 * 1024


@dataclass(frozen=True)
class Reservation:
    """Ray options of one partition actor: ``resources`` and ``memory`` (bytes)."""

    resources: dict[str, float]
    memory: int


def reservation(
    resource: str, base_mb: int, bytes_per_aggregate: int, aggregates: int
) -> Reservation:
    """One slot of ``resource`` (none when it is empty) and ``base_mb`` MiB plus
    ``bytes_per_aggregate`` for each of the ``aggregates`` the partition holds (0 when not
    yet known: a new partition, or one that has not reported)."""
    return Reservation(
        resources={resource: 1.0} if resource else {},
        memory=base_mb * _MB + bytes_per_aggregate * max(0, aggregates),
    )
