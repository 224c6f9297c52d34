"""Setting a record aside: the transaction of one record whose transactions kept aborting.

It is dead-lettered with code `unprocessable`; when its envelope is readable, its sender gets
a rejection that is remembered like any decision (a retry of the id gets it again, never an
execution). The id memory and the idempotency window rule it as they rule a batch. A client
command another partition forwarded here (`Forwarded`) is answered as that client command.
A record for a slot the partition does not own is forwarded to its owner instead, as the
batch step would: only a slot's owner sets its records aside (and holds its lost legs).
"""

from topology.codec.aggregate import Codec
from topology.codec.commands import CommandDecodeError, command_fingerprint
from topology.codec.replies import decode_entry, encode_entry
from topology.codec.wire import CodecError
from topology.codes import PoisonCode
from topology.envelopes import Answered, CommandEnvelope, Reply
from topology.idempotency import IdMemory, IdVerdict, judge
from topology.limits import MAX_SNAPSHOT_BYTES, clip
from topology.moves import RecordKind, SlotRecord, decode_forwarded, record_kind
from topology.routing import Router, RoutingTable
from topology.step.admission import id_key, id_refusal
from topology.step.answers import Answers
from topology.step.context import StepContext
from topology.step.forwarding import forward
from topology.step.guard import SizeGuard
from topology.step.output import Output, assemble
from topology.step.records import BatchResult, InRecord
from topology.step.saga import SagaRouter
from topology.step.state import LostLegs, Slots, Tally

__all__ = ["set_aside"]


def set_aside(
    codec: Codec,
    record: InRecord,
    reason: str,
    *,
    partition: int,
    source_topic: str,
    events_offset: int,
    now_ms: int,
    seq: int,
    version: int = 0,
    reply_lanes: int = 1,
    positions: tuple[int, int] = (0, 0),
    window_ms: int,
    ids: IdMemory | None = None,
    lost: frozenset[bytes] = frozenset(),
    partitions: int = 1,
    routing: RoutingTable | None = None,
    slots: SlotRecord | None = None,
) -> BatchResult:
    """The transaction that sets `record` aside: its dead letter (with `reason`) and, when
    its envelope is readable, a remembered rejection to its sender. An id the memory `ids`
    already holds keeps its answer: the record is a retry, so its sender gets the remembered
    reply (none while its saga runs), and nothing is overwritten (an internal command set
    aside is a lost leg: added to `lost`, the checkpoint's); one first tried longer than
    `window_ms` ago is refused as expired, as the batch step would. `version` is the
    aggregate's current version; `seq` the partition's commit sequence once this transaction
    commits. `partitions`, `routing` and `slots` are the batch step's: with a slot record
    that does not own the record's aggregate, the transaction forwards the record to its
    owner instead (nothing dead-lettered, nothing answered). Nothing else."""
    effective = routing
    if slots is not None:
        effective = slots.table if routing is None else routing.merge(slots.table)
    router = Router(partitions, effective)  # it routes only a forward
    context = StepContext(
        codec, partition, router, reply_lanes, source_topic, window_ms, now_ms, seq, slots
    )
    output = Output(context)
    answers = Answers(context, output, SagaRouter(context, output))
    legs = LostLegs(lost)
    command = _unwrapped(record)
    try:
        envelope: CommandEnvelope | None = codec.commands.decode(command.value)[0]
    except CommandDecodeError as error:
        envelope = error.envelope
    nexts = list(positions)
    nexts[int(record.internal)] = record.offset + 1
    forwarded = envelope is not None and forward(context, output, command, envelope)
    if not forwarded:
        answers.dead_letter(record, PoisonCode.UNPROCESSABLE, clip(reason), None, version=version)
    if envelope is not None and not forwarded:
        first = envelope.first_attempt_ms
        if first is None:
            first = now_ms if command.forwarded_ms is None else command.forwarded_ms
        reply = Reply.refuse(
            command_id=envelope.command_id,
            aggregate_id=envelope.aggregate_id,
            code=PoisonCode.UNPROCESSABLE,
            message=clip(reason),
            version=version,
            position=context.position,
        )
        entry = encode_entry(Answered(reply, first, command_fingerprint(envelope)))
        key = id_key(envelope, internal=command.leg)
        remembered = None if ids is None else ids.lookup([key])[0]
        earlier = None if remembered is None else decode_entry(remembered)
        if command.leg:
            # An original leg never decided is lost: remembered as set aside and named in the
            # checkpoint until an operator settles it. A copy sent again on a retry is never
            # done anyway, and a settlement set aside leaves its leg lost: neither is new.
            if remembered is None and not envelope.resent and not envelope.redrive:
                output.remember(record, None, key, entry)
                legs.add(key)
        else:
            verdict = judge(
                now_ms=now_ms,
                window_ms=window_ms,
                first_attempt_ms=first,
                fingerprint=command_fingerprint(envelope),
                seen_first_attempt_ms=None if earlier is None else earlier.first_attempt_ms,
                seen_fingerprint=None if earlier is None else earlier.fingerprint,
            )
            if verdict is IdVerdict.EXECUTE:
                output.remember(record, envelope.reply_to, key, entry)
            elif verdict is not IdVerdict.REPEAT or remembered is None or earlier is None:
                refusal = id_refusal(context, verdict, envelope, first, earlier)
                answers.refuse(record, envelope, key, refusal, version=version)
            elif isinstance(earlier, Answered):  # an id in flight has no answer yet
                output.reply(record, envelope.reply_to, key, remembered)
    return assemble(
        context,
        output,
        Slots({}),
        Tally(None, None),
        legs,
        guard=SizeGuard(context, events_offset, MAX_SNAPSHOT_BYTES, frozenset()),
        next_offsets=(nexts[0], nexts[1]),
    )


def _unwrapped(record: InRecord) -> InRecord:
    """The client command a `Forwarded` record wraps (read as the batch step reads it), or
    `record` itself (any other record, or a wrapper that does not decode)."""
    try:
        if not record.internal or record_kind(record.headers) is not RecordKind.FORWARDED:
            return record
        forwarded = decode_forwarded(record.value or b"")
    except (CodecError, ValueError):
        return record
    return InRecord(
        record.offset, record.key, forwarded.value, record.headers, True, forwarded.read_ms
    )
