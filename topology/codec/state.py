"""The state topic's records: an aggregate's public view (msgpack of the aggregate's view
type, keyed by the aggregate id) and a partition's flows (msgpack of `Flows`, keyed by
`topology.flows.FLOWS_KEY`). `ViewCodec` is bound to an aggregate's view type."""

from typing import Any, Final

import msgspec

from topology.codec.wire import ENCODER, decoded
from topology.flows import Flows
from topology.protocol import AnyAggregate

__all__ = ["ViewCodec", "decode_flows", "encode_flows"]

_FLOWS: Final = msgspec.msgpack.Decoder(Flows)


def encode_flows(flows: Flows) -> bytes:
    """A partition's flows record value."""
    return ENCODER.encode(flows)


def decode_flows(data: bytes) -> Flows:
    """The flows a flows record's value holds. Raises CodecError."""
    return decoded(_FLOWS, data, "a flows record")


class ViewCodec:
    """An aggregate's public views to bytes and back; its decoder is built once, here."""

    def __init__(self, aggregate: AnyAggregate) -> None:
        self.aggregate = aggregate
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(aggregate.view_type)

    def encode(self, state: Any, version: int) -> bytes:
        """A state record's value: the msgpack of the aggregate's public view of `state`."""
        return ENCODER.encode(self.aggregate.view(state, version))

    def decode(self, data: bytes) -> Any:
        """The public view a state record's value holds. Raises CodecError."""
        return decoded(self._decoder, data, f"a {self.aggregate.name} view")
