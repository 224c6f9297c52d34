"""The records of one transaction so far, the outcomes of its commands, the id memory's new
entries, and the assembly of all of it into a `BatchResult`."""

from topology.envelopes import CommandEnvelope
from topology.step.context import StepContext
from topology.step.records import BatchResult, InRecord, Outcome, OutcomeKind, OutRecord, origin
from topology.step.state import LostLegs, Slots, Tally
from topology.topics import TopicKind

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
    events_offset: int,
    next_offsets: tuple[int, int],
    held: str | None = None,
) -> BatchResult:
    """The batch's records, with one snapshot and one view per changed aggregate (stamped
    with `events_offset`, the events partition's end before this batch), and where the
    commands and internal topics resume (`next_offsets`)."""
    codec, partition = context.codec, context.partition
    snapshots: list[OutRecord] = []
    views: list[OutRecord] = []
    for aggregate_id, slot in slots.changed.items():
        key, value = codec.snapshots.record(aggregate_id, slot, events_offset)
        snapshots.append(OutRecord(TopicKind.SNAPSHOTS, partition, key, value, [], None))
        if slot.state is not None:
            value = codec.views.encode(slot.state, slot.version)
            views.append(OutRecord(TopicKind.STATE, partition, key, value, [], None))
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
    )
