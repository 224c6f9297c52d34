"""The records of one transaction so far, the outcomes of its commands, the id memory's new
entries, and the assembly of all of it into a `BatchResult`."""

from typing import TYPE_CHECKING

from topology.envelopes import CommandEnvelope
from topology.step.context import StepContext
from topology.step.guard import SizeGuard
from topology.step.records import BatchResult, InRecord, Outcome, OutcomeKind, OutRecord, origin
from topology.step.state import LostLegs, Slots, Tally
from topology.topics import TopicKind

if TYPE_CHECKING:
    from topology.step.moving import Moves

__all__ = ["Output", "assemble"]


class Output:
    """What the batch produces, in the order it decided it (per topic)."""

    def __init__(self, context: StepContext) -> None:
        self._context = context
        self.replies: list[OutRecord] = []
        self.events: list[OutRecord] = []
        self.dlq: list[OutRecord] = []
        self.internal: list[OutRecord] = []  # internal commands for other partitions
        self.outcomes: list[Outcome] = []
        self.remembered: dict[bytes, bytes] = {}  # id key → reply value, for the id memory
        self.last_remembered: dict[int, bytes] = {}  # replies partition → its last id key

    def reply(self, record: InRecord, reply_to: int | None, key: bytes, value: bytes) -> int:
        """Send a reply (`value`, keyed `key`) to the sender's reply lane on this partition,
        if it has a valid one; the replies partition written (-1: none)."""
        partition = self._context.replies_partition(reply_to)
        if partition is None:
            return -1
        self.replies.append(
            OutRecord(
                TopicKind.REPLIES, partition, key, value, [], origin(record.offset, record.internal)
            )
        )
        return partition

    def remember(self, record: InRecord, reply_to: int | None, key: bytes, value: bytes) -> None:
        """Remember a decision's reply and write it to the id memory's changelog: to the
        sender's reply lane, or to lane 0 when the sender wants no reply (so a new disk
        restores it too); mark it as that replies partition's last remembered reply."""
        self.remembered[key] = value
        lane = reply_to if reply_to is not None and reply_to < self._context.reply_lanes else 0
        self.last_remembered[self.reply(record, lane, key, value)] = key

    def event(self, record: InRecord, value: bytes) -> None:
        """An event of the command `record`, on this partition."""
        self.events.append(
            OutRecord(
                TopicKind.EVENTS,
                self._context.partition,
                record.key,
                value,
                [],
                origin(record.offset, record.internal),
            )
        )

    def internal_command(self, record: InRecord, owner: int, key: bytes, value: bytes) -> None:
        """An internal command `record` sends to partition `owner` (another one)."""
        source = origin(record.offset, record.internal)
        self.internal.append(OutRecord(TopicKind.INTERNAL, owner, key, value, [], source))

    def forward(
        self, record: InRecord, owner: int, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        """Send `record` on to partition `owner`'s internal topic under its own key, as
        `value` (a leg as itself, a client command wrapped as `Forwarded`)."""
        source = origin(record.offset, record.internal)
        self.internal.append(
            OutRecord(TopicKind.INTERNAL, owner, record.key, value, headers, source)
        )

    def outcome(
        self,
        record: InRecord,
        envelope: CommandEnvelope | None,
        kind: OutcomeKind,
        code: str | None,
    ) -> None:
        self.outcomes.append(
            Outcome(
                record.offset,
                None if envelope is None else envelope.command_id,
                None if envelope is None else envelope.aggregate_id,
                None if envelope is None else envelope.type,
                kind,
                code,
                record.headers,
                record.internal,
                None if envelope is None else envelope.principal,
            )
        )


def assemble(
    context: StepContext,
    output: Output,
    slots: Slots,
    tally: Tally,
    legs: LostLegs,
    *,
    guard: SizeGuard,
    next_offsets: tuple[int, int],
    held: str | None = None,
    moves: "Moves | None" = None,
) -> BatchResult:
    """The batch's records, with one snapshot and one view per changed aggregate (built by
    `guard`, which notes any over the limit), and where the commands and internal topics
    resume (`next_offsets`)."""
    snapshots: list[OutRecord] = []
    views: list[OutRecord] = []
    for aggregate_id, slot in slots.changed.items():
        snapshot, view = guard.records(aggregate_id, slot)
        snapshots.append(snapshot)
        if view is not None:
            views.append(view)
    if moves is not None:
        snapshots += (r for r in moves.tombstones if r.kind is TopicKind.SNAPSHOTS)
        views += (r for r in moves.tombstones if r.kind is TopicKind.STATE)
    return BatchResult(
        replies=output.replies,
        events=output.events,
        snapshots=snapshots,
        views=views,
        dlq=output.dlq,
        changed=slots.changed,
        remembered=output.remembered,
        last_remembered=output.last_remembered,
        outcomes=output.outcomes,
        next_offset=next_offsets[0],
        internal=output.internal,
        next_internal_offset=next_offsets[1],
        flows=tally.flows_after(context),
        held=held,
        lost=legs.after(),
        slot_record=None if moves is None else moves.record,
        departed=frozenset() if moves is None else moves.departed,
        clock_ms=None if moves is None else moves.clock_ms,
        move_id=None if moves is None else moves.move_id,
    )
