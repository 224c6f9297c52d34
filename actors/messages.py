"""What crosses a Ray call between actors, the CLI and the tests: typed records and states
that know their legal moves, never ``dict[str, Any]`` nor phases compared as strings.

Invariant: a ``PartitionStatus`` or ``ShadowPhase`` changes only along ``_MOVES`` (``move``
raises ``IllegalTransitionError`` otherwise); every record here is a frozen msgspec Struct
(but ``Counters``, which its worker mutates); every state or origin is an enum member.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from topology.control import RebuildPhase, RebuildRecord, RepartitionRecord
from topology.envelopes import Position

__all__ = [
    "Counters",
    "IllegalTransitionError",
    "Members",
    "PartitionStats",
    "PartitionStatus",
    "Paused",
    "RebuildProgress",
    "RepartitionProgress",
    "RestoredFrom",
    "RowState",
    "ServedBy",
    "ServiceStatus",
    "ShadowPhase",
    "ShadowProgress",
    "StatusRow",
    "Switched",
    "ViewAt",
]


class IllegalTransitionError(RuntimeError):
    """A state asked to move where its declared transitions do not go."""


class PartitionStatus(StrEnum):
    """A partition member's status. The writer: STOPPED → RESTORING → RUNNING; a failed
    opening or loop ends in FAILED, a takeover of its transactional id in FENCED (both final:
    the supervisor replaces the actor), a cause only an operator can fix in BLOCKED
    (``unblock`` restores again); RUNNING → STOPPED on ``stop``. A standby: STOPPED →
    RESTORING → FOLLOWING (it tails the writer's commits) → STOPPED or FAILED."""

    RESTORING = "restoring"
    RUNNING = "running"
    FOLLOWING = "following"
    FENCED = "fenced"
    FAILED = "failed"
    STOPPED = "stopped"
    BLOCKED = "blocked"  # waits for an operator (see `unblock`); never restarted by itself

    def can_move_to(self, target: PartitionStatus) -> bool:
        return target in _PARTITION_MOVES[self]

    def move(self, target: PartitionStatus) -> PartitionStatus:
        """``target``, when the move is declared; raises otherwise."""
        if not self.can_move_to(target):
            raise IllegalTransitionError(f"partition status {self} cannot move to {target}")
        return target

    @property
    def serving(self) -> bool:
        return self is PartitionStatus.RUNNING


_S = PartitionStatus
_PARTITION_MOVES: dict[PartitionStatus, frozenset[PartitionStatus]] = {
    _S.STOPPED: frozenset({_S.RESTORING, _S.BLOCKED, _S.FENCED, _S.FAILED}),
    _S.RESTORING: frozenset({_S.RUNNING, _S.FOLLOWING, _S.FENCED, _S.FAILED, _S.BLOCKED}),
    _S.FOLLOWING: frozenset({_S.STOPPED, _S.FAILED}),
    # RUNNING → RESTORING: a fatal producer error re-creates the clients and restores
    _S.RUNNING: frozenset({_S.RESTORING, _S.STOPPED, _S.FENCED, _S.FAILED, _S.BLOCKED}),
    _S.BLOCKED: frozenset({_S.RESTORING, _S.BLOCKED, _S.FENCED, _S.FAILED}),
    _S.FAILED: frozenset({_S.FAILED}),
    _S.FENCED: frozenset({_S.FENCED}),
}


class ShadowPhase(StrEnum):
    """A shadow rebuild's phase: RESUMING (reading its own checkpoints) → REPLAYING ⇄
    CAUGHT_UP → FINISHED (the hand-over is made); any phase but FINISHED → FAILED; both of
    those are final."""

    RESUMING = "resuming"
    REPLAYING = "replaying"
    CAUGHT_UP = "caught_up"
    FINISHED = "finished"
    FAILED = "failed"

    def can_move_to(self, target: ShadowPhase) -> bool:
        return target in _SHADOW_MOVES[self]

    def move(self, target: ShadowPhase) -> ShadowPhase:
        """``target``, when the move is declared; raises otherwise."""
        if not self.can_move_to(target):
            raise IllegalTransitionError(f"shadow phase {self} cannot move to {target}")
        return target

    @property
    def replaying(self) -> bool:
        """Folding events (behind or at the end): a switch may begin when it is near."""
        return self in (ShadowPhase.REPLAYING, ShadowPhase.CAUGHT_UP)


_P = ShadowPhase
_SHADOW_MOVES: dict[ShadowPhase, frozenset[ShadowPhase]] = {
    # RESUMING → FINISHED: a shadow never started in the background replays all in `finish`
    _P.RESUMING: frozenset({_P.REPLAYING, _P.FINISHED, _P.FAILED}),
    _P.REPLAYING: frozenset({_P.REPLAYING, _P.CAUGHT_UP, _P.FINISHED, _P.FAILED}),
    _P.CAUGHT_UP: frozenset({_P.REPLAYING, _P.CAUGHT_UP, _P.FINISHED, _P.FAILED}),
    _P.FINISHED: frozenset({_P.FINISHED}),
    _P.FAILED: frozenset({_P.FAILED}),
}


class RestoredFrom(StrEnum):
    """Where a partition's state came from at its last restore."""

    SNAPSHOTS = "snapshots"
    EVENTS = "events"  # the snapshots were of another state schema: the events were folded


class ServedBy(StrEnum):
    """Which member of a partition answered a read."""

    WRITER = "writer"
    STANDBY = "standby"


class RowState(StrEnum):
    """A partition in ``eventledger status``, as the coordinator sees it (``actors.status``
    decides it from the actor's phase and status): RUNNING and REBUILDING take commands (a
    rebuild runs beside the live actor); the others do not."""

    RUNNING = "running"
    REBUILDING = "rebuilding"
    PAUSED = "paused"
    RESTORING = "restoring"
    RESTARTING = "restarting"
    MISSING = "missing"
    BLOCKED = "blocked"
    FENCED = "fenced"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def takes_commands(self) -> bool:
        return self in (RowState.RUNNING, RowState.REBUILDING)


class Counters(msgspec.Struct, kw_only=True):
    """What a partition has done since its worker started (restores included); the worker
    mutates its own, ``PartitionStats`` carries a frozen copy."""

    processed: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    dlq: int = 0
    forwarded: int = 0  # records sent on to the partition that owns their slot
    batches: int = 0
    aborts: int = 0
    producer_restarts: int = 0
    committed_offset: int = -1
    first_batch_at: float = 0.0
    last_commit_ms: float = 0.0
    last_commit_at: float = 0.0
    restored_aggregates: int = 0
    restored_records: int = 0
    restore_seconds: float = 0.0
    restored_from: RestoredFrom = RestoredFrom.SNAPSHOTS
    ids_restored: int = 0  # changelog records read into the id memory at the last start
    ids_restore_seconds: float = 0.0
    takeover_steps_ms: dict[str, float] = {}  # a promoted standby's takeover, step by step
    move_pauses_ms: dict[str, float] = {}  # by move id: its handoff or install batch's time


# msgspec allows a frozen Struct to extend a mutable one; mypy's dataclass rule does not.
class PartitionStats(Counters, frozen=True, kw_only=True):  # type: ignore[misc]
    """A partition actor's status, position and counters, for ``status``, the coordinator,
    the bench and the fault suite."""

    partition: int
    status: PartitionStatus
    error: str | None
    aggregates: int
    generation: int
    paused: bool
    rss_bytes: int
    ids_disk_bytes: int
    member: int = 0  # its member number (0 writes until a takeover)
    seq: int = 0  # the commit sequence of the state it holds (Checkpoint.seq)
    epoch: int = 0  # the highest takeover epoch it has seen
    liveness: str = ""  # host:port of its liveness socket ("": none)
    routing_version: int = 0  # the version of the routing table it routes by (0: v0 or none)
    slot_record: bytes | None = None  # its slot record, encoded (None: it has none)


class Paused(msgspec.Struct, frozen=True):
    """A partition holds: every command below ``committed_offset`` is committed, and every
    event its batches wrote lies below offset ``events_end`` of ``events[p]``. (A commit
    returns before Kafka writes its markers: until they land, a ``read_committed`` reader's
    end of the log may lie below ``events_end``.)"""

    committed_offset: int
    generation: int
    events_end: int


class Switched(msgspec.Struct, frozen=True):
    """A partition now serves snapshot generation ``generation``."""

    generation: int
    aggregates: int


class ViewAt(msgspec.Struct, frozen=True, kw_only=True):
    """An aggregate's committed public view (None: it does not exist) and version (0: none),
    read at its partition's ``position`` by ``served_by``; ``reached``: that state met the
    read's bounds (a version, a position, at least), else the read waited for them in vain.
    ``owner``: this partition does not own the aggregate's slot (a repartition moved it, or
    is moving it): ask that partition instead (None: answered here)."""

    view: msgspec.Struct | None
    version: int
    position: Position
    reached: bool = True
    served_by: ServedBy = ServedBy.WRITER
    owner: int | None = None


class Members(msgspec.Struct, frozen=True):
    """Per partition, its standby members that follow its writer (``Names.member_actor``),
    as the coordinator last observed them, and its writer member (absent: member 0)."""

    standbys: dict[int, list[int]]
    writers: dict[int, int] = {}


class ShadowProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a shadow rebuild is: its phase, the events offset reached and the end."""

    partition: int
    generation: int
    phase: ShadowPhase
    position: int
    end: int
    resumed_from: int
    replayed: int
    seconds: float
    aggregates: int
    error: str | None
    aggregate: str
    finish_steps_ms: dict[str, float]
    state_schema_version: int


class RebuildProgress(msgspec.Struct, frozen=True, kw_only=True):
    """A partition's latest rebuild: its control record and, while its shadow runs (or
    after the switch), the shadow's progress and the pause, step by step."""

    record: RebuildRecord
    shadow: ShadowProgress | None = None
    pause_steps_ms: dict[str, float] = {}

    @property
    def phase(self) -> RebuildPhase:
        return self.record.phase


class RepartitionProgress(msgspec.Struct, frozen=True, kw_only=True):
    """The latest repartition as recorded (None: never one) and, when the coordinator's
    repartition step failed on its last tick, why (it tries again every tick)."""

    record: RepartitionRecord | None
    error: str | None = None


class StatusRow(msgspec.Struct, frozen=True, kw_only=True):
    """One partition in ``eventledger status``: where it runs, its state as the coordinator
    sees it, its generation, position, lag and restarts; which member writes it and at which
    epoch (one up per takeover); per standby member, how many commits it is behind the writer
    (None: it did not report); how many slots the published routing table gives it (None:
    the application has no slots), and whether it is drained (it owns no slot after a
    shrink and only forwards, `topology.control.drained_partitions`).
    """

    partition: int
    node: str
    state: RowState
    generation: int
    aggregates: int | None
    committed_offset: int | None
    lag: int | None
    restarts: int
    last_commit_age: float | None
    error: str | None
    rebuild: RebuildProgress | None
    standby_lags: dict[int, int | None] = {}
    writer: int = 0
    epoch: int = 0
    slots: int | None = None
    drained: bool = False


class ServiceStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The service as of the coordinator's last tick; ``slots`` is S (0: not assigned) and
    ``routing_version`` the published routing table's version (None: no table)."""

    app_id: str
    partitions: int
    bootstrap_servers: str
    nodes: list[str]
    ticks: int
    observed_at: float | None
    errors: dict[str, str]
    rows: list[StatusRow]
    rebuilds: dict[int, RebuildProgress]
    slots: int = 0
    routing_version: int | None = None
    repartition: RepartitionRecord | None = None
