"""Reply records: a `Reply` as msgpack (an array), keyed by its command id for a client's
answer (`topology.codec.keys.encode_key`) or by its id key when remembered
(`topology.codec.keys.encode_id_key`)."""

from typing import Final

import msgspec

from topology.codec.wire import ENCODER, decoded
from topology.envelopes import Reply

__all__ = ["decode_reply", "encode_reply"]

_REPLY: Final = msgspec.msgpack.Decoder(Reply)


def encode_reply(reply: Reply) -> bytes:
    """A reply record's value."""
    return ENCODER.encode(reply)


def decode_reply(data: bytes) -> Reply:
    """The reply a reply record's value holds. Raises CodecError."""
    return decoded(_REPLY, data, "a reply")
