"""The saga's routing: the internal commands a decision sends go to their target's partition.
One for this partition is handled in this batch, right after the command that sent it (in
order: a queue the driver drains); one for another partition goes to that partition's
internal topic in this transaction. Each leg is thus one transaction of one partition that
also produces the next leg, so every leg happens exactly once."""

from collections import deque
from collections.abc import Sequence
from typing import Any

from topology.codec.keys import encode_id_key, encode_key
from topology.envelopes import Origin
from topology.protocol import Send
from topology.step.context import StepContext
from topology.step.output import Output
from topology.step.records import InRecord

__all__ = ["SagaRouter"]


class SagaRouter:
    """Routes the internal commands of one batch; `next_local` hands out those for here."""

    def __init__(self, context: StepContext, output: Output) -> None:
        self._context = context
        self._output = output
        self._local: deque[InRecord] = deque()

    def route(
        self,
        record: InRecord,
        sends: Sequence[Send[Any]],
        origin: Origin | None,
        principal: str | None,
    ) -> list[tuple[str, bytes]]:
        """Send a decision's internal commands (with `origin`, the saga's client command,
        and `principal`, who sent the command that decided them): the (target, record value)
        of each."""
        first = self._context.now_ms if origin is None else origin.first_attempt_ms
        routed = []
        for send in sends:
            value = self._context.codec.commands.encode_internal(
                send.target,
                send.command,
                command_id=send.command_id,
                origin=origin,
                first_attempt_ms=first,
                principal=principal,
            )
            self.dispatch(record, send.target, value)
            routed.append((send.target, value))
        return routed

    def dispatch(self, record: InRecord, target: str, value: bytes) -> None:
        """Send the internal command record `value` (caused by `record`) to `target`."""
        key = encode_key(target)
        if self._context.owns(target):
            self._local.append(InRecord(record.offset, key, value, (), True))
        else:
            self._output.internal_command(record, self._context.route(key), key, value)

    def next_local(self) -> InRecord | None:
        """The oldest internal command for this partition not handled yet (None: none)."""
        return self._local.popleft() if self._local else None

    def end_saga(self, record: InRecord, origin: Origin, value: bytes) -> None:
        """The saga's final reply `value` is also remembered under its first command's id
        when that command's aggregate lives here (replacing its in-flight marker)."""
        if self._context.owns(origin.aggregate_id):
            key = encode_id_key(origin.aggregate_id, origin.command_id)
            self._output.remember(record, origin.reply_to, key, value)
