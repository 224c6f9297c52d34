"""The senders of the e2e and latency phases to the peers (Kafka Streams, the raw echo): the
request/reply channel ``LedgerClient`` sends through (``actors.channel.ReplyChannel``: the
same confluent-kafka configs, command records and reply routing) on the peer's topics."""

from __future__ import annotations

import msgspec

from actors.channel import ReplyChannel
from topology.codec.replies import decode_answer
from topology.envelopes import CommandEnvelope, Reply
from topology.settings import Settings

__all__ = ["echo_answer", "peer_channel"]

_ENVELOPE = msgspec.msgpack.Decoder(CommandEnvelope)


def peer_channel(
    bootstrap: str,
    app_id: str,
    partitions: int,
    *,
    reply_lanes: int = 1,
    lane: int = 0,
    echo: bool = False,
) -> ReplyChannel:
    """A channel to application ``app_id``'s topics, listening on reply lane ``lane``;
    ``echo``: its replies are the commands' own bytes (the raw echo)."""
    settings = Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=partitions,
        reply_lanes=reply_lanes,
    )  # fmt: skip
    return ReplyChannel(settings, lane=lane, answer=echo_answer if echo else decode_answer)


def echo_answer(value: bytes) -> Reply:
    """The raw echo's reply record (a command's own bytes), answered as accepted."""
    envelope = _ENVELOPE.decode(value)
    return Reply(
        command_id=envelope.command_id,
        aggregate_id=envelope.aggregate_id,
        accepted=True,
        code=None,
        message="",
        version=0,
    )
