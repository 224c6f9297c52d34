"""Slots and the routing table (`docs/design-repartition.md`), pure.

An aggregate's slot is a function of its key alone, fixed forever:
`slot(key, S) = (murmur2(key) & 0x7fffffff) % S`. A `RoutingTable` names the partition that
owns each of the application's S slots and the version at which each slot last moved.

Invariants:

- Version 0 is Kafka's layout: `RoutingTable.initial(N0, S)` has `owner[s] = s % N0`, and since
  S is a multiple of N0, `owner_of(key) == partition_for(key, N0)` for every key.
- A slot's `moved_at` only grows (`assign`), and tables merge slot by slot, the higher
  `moved_at` winning: the merge is commutative, associative and idempotent.
- `plan_moves` moves the fewest slots that leave every partition's count within one of every
  other's.

`Router` is the one place a command's or leg's partition is computed: by the table when the
application has one, else by `partition_for` as before slots existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

from topology.partitioner import murmur2, partition_for

__all__ = [
    "ACCOUNTS_PER_MOVE",
    "MAX_SLOTS",
    "SLOTS_PER_MOVE",
    "Move",
    "Router",
    "RoutingTable",
    "plan_moves",
    "slot",
    "slots_per_move_for",
]

MAX_SLOTS: Final = 65_535
"""The most slots an application may have: an owner (a partition below S) fits 16 bits."""

SLOTS_PER_MOVE: Final = 5
"""The default for `plan_moves`' `slots_per_move`, and the most `slots_per_move_for` gives:
about 8 MiB of state and remembered ids at the design's estimate of ~1.5 MB per slot."""

ACCOUNTS_PER_MOVE: Final = 2_500
"""How many aggregates one move carries at most (`slots_per_move_for`), whatever fits in
`SLOTS_PER_MOVE` slots: a leg's batch grows with them (measured on 2 cores at 1,000,000
accounts: a 5-slot move of ~5,200 took up to 1.4 s a leg, over the ≤ 1 s budget)."""


def slot(key: bytes, slots: int) -> int:
    """The slot of `key` among `slots`: `(murmur2(key) & 0x7fffffff) % slots`."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    return (murmur2(key) & 0x7FFFFFFF) % slots


class RoutingTable(msgspec.Struct, frozen=True):
    """The owner of each slot (`owners[s]`) and the table version at which slot s last moved
    (`moved_at[s]`, 0: never). The number of slots S is `len(owners)`, 1..`MAX_SLOTS`;
    every owner is below S (a partition count never exceeds S)."""

    owners: tuple[int, ...]
    moved_at: tuple[int, ...]

    def __post_init__(self) -> None:
        size = len(self.owners)
        if not 1 <= size <= MAX_SLOTS:
            raise ValueError(f"a routing table has 1..{MAX_SLOTS} slots, got {size}")
        if len(self.moved_at) != size:
            raise ValueError(f"{size} owners but {len(self.moved_at)} moved_at versions")
        if not 0 <= min(self.owners) <= max(self.owners) < size:
            raise ValueError(f"every owner must be a partition in 0..{size - 1}")
        if min(self.moved_at) < 0:
            raise ValueError("a moved_at version is never negative")

    @classmethod
    def initial(cls, partitions: int, slots: int) -> RoutingTable:
        """Version 0 for an application of `partitions` partitions: `owner[s] = s % partitions`,
        which agrees with `partition_for(key, partitions)` because `slots` is a multiple of
        `partitions`. Raises ValueError otherwise."""
        if partitions < 1 or slots % partitions:
            raise ValueError(
                f"slots ({slots}) must be a positive multiple of partitions ({partitions})"
            )
        return cls(tuple(s % partitions for s in range(slots)), (0,) * slots)

    @property
    def slots(self) -> int:
        """S, the number of slots."""
        return len(self.owners)

    @property
    def version(self) -> int:
        """The version of the latest move the table holds (0: none)."""
        return max(self.moved_at)

    @property
    def modulus(self) -> int | None:
        """N when the table is modular (`owner[s] = s % N` for every slot), else None."""
        n = max(self.owners) + 1
        return n if all(o == s % n for s, o in enumerate(self.owners)) else None

    def slot_of(self, key: bytes) -> int:
        """The slot of `key`."""
        return slot(key, len(self.owners))

    def owner_of(self, key: bytes) -> int:
        """The partition that owns `key`'s slot."""
        return self.owners[slot(key, len(self.owners))]

    def counts(self, partitions: int) -> list[int]:
        """How many slots each of partitions 0..max(partitions, owners)-1 owns."""
        counts = [0] * max(partitions, max(self.owners) + 1)
        for owner in self.owners:
            counts[owner] += 1
        return counts

    def assign(self, slots: Iterable[int], owner: int, version: int) -> RoutingTable:
        """The table after `slots` moved to `owner` at `version`. Raises ValueError when
        `version` is not above every one of their `moved_at` (a slot's version only grows)."""
        owners, moved_at = list(self.owners), list(self.moved_at)
        for s in slots:
            if version <= moved_at[s]:
                raise ValueError(f"slot {s} moved at {moved_at[s]}, not below {version}")
            owners[s], moved_at[s] = owner, version
        return RoutingTable(tuple(owners), tuple(moved_at))

    def merge(self, other: RoutingTable) -> RoutingTable:
        """Slot by slot, the entry with the higher `moved_at`. Equal versions with different
        owners never come from the driver (each move has a fresh version); should they, the
        higher owner wins, so the merge stays order-free. Raises ValueError for a table of
        another S."""
        if other.slots != self.slots:
            raise ValueError(f"cannot merge a table of {other.slots} slots into {self.slots}")
        if other == self:
            return self
        pairs = [
            max(mine, theirs)
            for mine, theirs in zip(
                zip(self.moved_at, self.owners, strict=True),
                zip(other.moved_at, other.owners, strict=True),
                strict=True,
            )
        ]
        return RoutingTable(tuple(o for _, o in pairs), tuple(v for v, _ in pairs))


class Move(msgspec.Struct, frozen=True):
    """Slots `slots` (ascending) going from partition `source` to partition `target`, as one
    unit. The driver gives each move its own fresh version when it requests it."""

    source: int
    target: int
    slots: tuple[int, ...]


def slots_per_move_for(aggregates: int, slots: int) -> int:
    """The slots per move that keep a move within `ACCOUNTS_PER_MOVE` of an application
    holding `aggregates` over `slots` slots (hashing spreads them evenly): between 1 and
    `SLOTS_PER_MOVE`. Raises ValueError for fewer than 1 slot or a negative count."""
    if slots < 1 or aggregates < 0:
        raise ValueError(f"need slots >= 1 and aggregates >= 0, got {slots} and {aggregates}")
    per_slot = aggregates / slots
    if per_slot <= ACCOUNTS_PER_MOVE / SLOTS_PER_MOVE:
        return SLOTS_PER_MOVE
    return max(1, int(ACCOUNTS_PER_MOVE // per_slot))


def plan_moves(
    table: RoutingTable, partitions: int, *, slots_per_move: int = SLOTS_PER_MOVE
) -> tuple[Move, ...]:
    """The moves that take `table` to `partitions` partitions (grow or shrink), sorted by
    (source, target, first slot).

    Every partition below `partitions` ends with ⌊S/M⌋ or ⌈S/M⌉ slots and every one above
    with none, and the number of slots moved is the minimum, Σ max(0, count − target): the
    ⌈S/M⌉ targets go to the partitions that own most (ties: the lowest), a partition over
    its target gives its lowest slots, and the given slots, in ascending order, fill the
    partitions under their targets in ascending order. When the table is modular on N,
    N divides M and M divides S, the target layout is `s % M` instead, an equally minimal
    plan that still agrees with Kafka's default partitioner on M partitions.

    Each (source, target) pair's slots are cut into moves of at most `slots_per_move`,
    lowest slots first. (The design cuts by `handoff_bytes` from each source's reported bytes
    per slot; until sources report sizes, a slot count stands in for it.)
    Raises ValueError unless 1 <= `partitions` <= S and `slots_per_move` >= 1."""
    if not 1 <= partitions <= table.slots:
        raise ValueError(f"partitions must be in 1..{table.slots}, got {partitions}")
    if slots_per_move < 1:
        raise ValueError(f"slots_per_move must be >= 1, got {slots_per_move}")
    n = table.modulus
    if n is not None and partitions % n == 0 and table.slots % partitions == 0:
        wanted = [s % partitions for s in range(table.slots)]
    else:
        wanted = _balanced(table, partitions)
    pairs: dict[tuple[int, int], list[int]] = {}
    for s, (have, want) in enumerate(zip(table.owners, wanted, strict=True)):
        if have != want:
            pairs.setdefault((have, want), []).append(s)
    return tuple(
        Move(source, target, tuple(group[i : i + slots_per_move]))
        for (source, target), group in sorted(pairs.items())
        for i in range(0, len(group), slots_per_move)
    )


def _balanced(table: RoutingTable, partitions: int) -> list[int]:
    """The owner of every slot in the least-moving balanced layout (see `plan_moves`)."""
    counts = table.counts(partitions)
    base, extra = divmod(table.slots, partitions)
    fullest = set(sorted(range(partitions), key=lambda p: (-counts[p], p))[:extra])
    target = [base + (p in fullest) if p < partitions else 0 for p in range(len(counts))]
    given = [max(0, c - t) for c, t in zip(counts, target, strict=True)]
    freed: list[int] = []
    for s, owner in enumerate(table.owners):
        if given[owner]:
            given[owner] -= 1
            freed.append(s)
    receivers = (p for p in range(partitions) for _ in range(target[p] - counts[p]))
    wanted = list(table.owners)
    for s, p in zip(freed, receivers, strict=True):
        wanted[s] = p
    return wanted


@dataclass(frozen=True, slots=True)
class Router:
    """Where a key's commands and legs go among `partitions`: the owner of its slot in
    `table`, or, with no table (an application whose slots are not assigned yet,
    `ServiceRecord.slots == 0`), `partition_for(key, partitions)`, Kafka's default."""

    partitions: int
    table: RoutingTable | None = None

    def partition_of(self, key: bytes) -> int:
        """The partition that owns `key`."""
        table = self.table
        return partition_for(key, self.partitions) if table is None else table.owner_of(key)
