"""Replies records, the replies topic's two kinds (tagged msgpack arrays): a `Reply` that
answers a client and is not remembered (keyed `UNREMEMBERED_KEY_PREFIX` + its id key), and an
id memory entry (`IdEntry`: `Answered` or `Deferred`), keyed by its id key
(`topology.codec.keys.encode_id_key`): the memory's changelog, whose `Answered` entries are
also their clients' answers."""

from typing import Final

import msgspec

from topology.codec.wire import ENCODER, decoded
from topology.envelopes import Answered, Deferred, IdEntry, Reply

__all__ = ["decode_answer", "decode_entry", "decode_reply_record", "encode_entry", "encode_reply"]

_ENTRY: Final[msgspec.msgpack.Decoder[IdEntry]] = msgspec.msgpack.Decoder(IdEntry)
_RECORD: Final[msgspec.msgpack.Decoder[Reply | IdEntry]] = msgspec.msgpack.Decoder(Reply | IdEntry)


def encode_reply(reply: Reply) -> bytes:
    """The value of a replies record that answers a client and is not remembered."""
    return ENCODER.encode(reply)


def encode_entry(entry: IdEntry) -> bytes:
    """The value of an id memory entry, the replies record keyed by its id key."""
    return ENCODER.encode(entry)


def decode_entry(data: bytes) -> IdEntry:
    """The id memory entry a remembered replies record holds. Raises CodecError."""
    return decoded(_ENTRY, data, "an id memory entry")


def decode_reply_record(data: bytes) -> Reply | IdEntry:
    """What a replies record holds: a reply that is not remembered, or an id memory entry.
    Raises CodecError."""
    return decoded(_RECORD, data, "a replies record")


def decode_answer(data: bytes) -> Reply | None:
    """The answer a replies record gives its client: its reply, remembered or not (None: a
    `Deferred` entry, which answers nothing yet). Raises CodecError."""
    record = decoded(_RECORD, data, "a replies record")
    if isinstance(record, Answered):
        return record.reply
    return None if isinstance(record, Deferred) else record
