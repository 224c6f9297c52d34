"""Forwarding: a record for an aggregate whose slot this partition does not own goes on to
the owner by the effective table, in the transaction that consumes it. A leg travels as
itself; a client command is wrapped as `Forwarded` (the partition and time it was read), so
its owner answers it as the client command it is. Shared by the batch step and by setting a
record aside: only the owner of a slot ever decides, dead-letters or refuses its records."""

from topology.codec.keys import encode_key
from topology.envelopes import CommandEnvelope
from topology.moves import RECORD_HEADER, Forwarded, RecordKind, encode_forwarded, kind_header
from topology.step.context import StepContext
from topology.step.output import Output
from topology.step.records import InRecord, OutcomeKind

__all__ = ["forward"]


def forward(
    context: StepContext, output: Output, record: InRecord, envelope: CommandEnvelope
) -> bool:
    """Send `record` on to the owner of its aggregate's slot when the partition has a slot
    record that does not own it (and the record's key names its aggregate). Whether it was
    forwarded; a record the tables route back here is not (admission dead-letters it)."""
    if (
        context.slots is None
        or record.key is None
        or record.key != encode_key(envelope.aggregate_id)
        or context.owns(envelope.aggregate_id)
    ):
        return False
    owner = context.route(record.key)
    if owner == context.partition:
        return False  # the tables contradict the slot record: dead-lettered by admission
    if record.leg:
        value, headers = record.value, list(record.headers)
    else:
        read_ms = context.now_ms if record.forwarded_ms is None else record.forwarded_ms
        value = encode_forwarded(Forwarded(record.value or b"", context.partition, read_ms))
        headers = [h for h in record.headers if h[0] != RECORD_HEADER]
        headers.append(kind_header(RecordKind.FORWARDED))
    assert value is not None  # it decoded
    output.forward(record, owner, value, headers)
    output.outcome(record, envelope, OutcomeKind.FORWARDED, None)
    return True
