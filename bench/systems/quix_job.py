"""The Quix Streams job: eventledger's job written the way a Quix Streams user would.

Runs in its own virtualenv (``bench.systems.quixenv``: Quix Streams pins an older
confluent-kafka than ours) as ``python -m bench.systems.quix_job CONFIG_JSON`` and talks to the
harness with ``bench.wire``. Three modes:

- ``process``: decode each command with our codec, deduplicate by command id (the last
  ``recent_limit`` replies per account, as eventledger keeps), ``LEDGER.decide`` /
  ``LEDGER.evolve``, keep the account in Quix's state store (RocksDB + changelog topic), and
  produce the reply, the event(s) and the public view; ``processing_guarantee="exactly-once"``.
- ``fill``: put one account per input record into the state store (builds the changelog).
- ``recover``: start on an empty state dir, so Quix restores the store from its changelog;
  report the recovery's start and end as Quix logs them.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

import confluent_kafka
import msgspec
import quixstreams
from quixstreams import Application
from quixstreams.models.serializers import Serializer

from bench.wire import emit, rss_bytes
from ledger.aggregate import LEDGER
from ledger.state import Account
from topology.codec.aggregate import Codec
from topology.codec.replies import encode_reply
from topology.codes import FlowCode
from topology.envelopes import Reply

CODEC = Codec(LEDGER)

log = logging.getLogger(__name__)

REPLIES, EVENTS, STATE = 0, 1, 2
SLOT = "slot"  # the state store key (Quix prefixes it with the message key)
Output = tuple[int, bytes, bytes]  # (output index, record key, record value)


class LedgerJob:
    """The per-command step. State per account: [account as a map or None, version,
    recent replies as [command id, accepted, code, message, version]]."""

    def __init__(self, recent_limit: int, views: bool) -> None:
        self.recent_limit = recent_limit
        self.views = views
        self.processed = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def __call__(self, value: bytes, state: Any) -> list[Output]:
        now = time.time()
        if not self.processed:
            self.first_at = now
        self.processed += 1
        self.last_at = now
        envelope, command = CODEC.commands.decode(value)
        aggregate_id, command_id = envelope.aggregate_id, envelope.command_id
        stored = state.get(SLOT)
        account: Account | None = None
        version = 0
        recent: list[list[Any]] = []
        if stored is not None:
            data, version, recent = stored
            if data is not None:
                account = msgspec.convert(data, Account)
        reply_key = command_id.encode()
        for seen_id, accepted, code, message, seen_version in recent:
            if seen_id == command_id:  # a retried command: the same reply, no new events
                again = (
                    Reply.accept(
                        command_id=command_id,
                        aggregate_id=aggregate_id,
                        version=seen_version,
                        position=None,  # the peer keeps no commit sequence
                    )
                    if accepted
                    else Reply.refuse(
                        command_id=command_id,
                        aggregate_id=aggregate_id,
                        code=code,
                        message=message,
                        version=seen_version,
                        position=None,
                    )
                )
                return [(REPLIES, reply_key, encode_reply(again))]
        out: list[Output] = []
        key = aggregate_id.encode()
        expected = envelope.expected_version
        refused: tuple[str, str] | None = None
        events: list[Any] = []
        if expected is not None and expected != version:  # checked by the flow, as in step
            message = f"expected version {expected}, account is at version {version}"
            refused = (FlowCode.VERSION_CONFLICT, message)
        else:
            decision = LEDGER.decide(account, command)
            rejection = decision.rejection
            if rejection is None:
                events = decision.events
            else:
                refused = (rejection.code, rejection.message)
        if refused is None:
            now_ms = int(now * 1000)
            for event in events:
                version += 1
                account = LEDGER.evolve(account, event)
                value = CODEC.events.encode(
                    aggregate_id, version, event, command_id=command_id, timestamp_ms=now_ms
                )
                out.append((EVENTS, key, value))
            reply = Reply.accept(
                command_id=command_id, aggregate_id=aggregate_id, version=version, position=None
            )
            if self.views and account is not None:
                out.append((STATE, key, CODEC.views.encode(account, version)))
        else:
            reply = Reply.refuse(
                command_id=command_id,
                aggregate_id=aggregate_id,
                code=refused[0],
                message=refused[1],
                version=version,
                position=None,
            )
        recent.append([command_id, reply.accepted, reply.code, reply.message, version])
        if len(recent) > self.recent_limit:
            del recent[: len(recent) - self.recent_limit]
        builtins = None if account is None else msgspec.to_builtins(account)
        state.set(SLOT, [builtins, version, recent])
        out.insert(0, (REPLIES, reply_key, encode_reply(reply)))
        return out


class FillJob:
    """Builds a store of one opened account per input record (value: its balance)."""

    def __init__(self) -> None:
        self.processed = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def __call__(self, value: bytes, state: Any) -> None:
        now = time.time()
        if not self.processed:
            self.first_at = now
        self.processed += 1
        self.last_at = now
        account = Account("open", "EUR", int(value), 0)
        state.set(SLOT, [msgspec.to_builtins(account), 1, []])


class Payload(Serializer):  # type: ignore[misc]
    """Writes the record value of an ``Output`` item."""

    def __call__(self, value: Output, ctx: Any) -> bytes:
        return value[2]


class RecoveryClock(logging.Handler):
    """Notes when Quix logs the start and the end of its changelog recovery."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.began_at = 0.0
        self.completed_at = 0.0
        self.partitions: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Beginning recovery check") and not self.began_at:
            self.began_at = record.created
        elif message.startswith("Recovery process complete"):
            self.completed_at = record.created
        elif message.startswith("Recovery successful for"):
            self.partitions.append(message)


def application(config: dict[str, Any]) -> Application:
    return Application(
        broker_address=config["bootstrap"],
        consumer_group=config["group"],
        auto_offset_reset="earliest",
        processing_guarantee=config["guarantee"],
        commit_interval=config["commit_interval"],
        state_dir=config["state_dir"],
        loglevel="INFO",
        producer_extra_config=config["producer"],
        consumer_extra_config=config["consumer"],
    )


def report_progress(job: LedgerJob | FillJob, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        emit("progress", processed=job.processed)


def versions() -> dict[str, str]:
    return {
        "quixstreams": quixstreams.__version__,
        "confluent-kafka (quix)": confluent_kafka.__version__,
        "librdkafka (quix)": confluent_kafka.libversion()[0],
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    mode = config["mode"]
    app = application(config)
    source = app.topic(config["input"], key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(source)
    job: LedgerJob | FillJob
    clock = RecoveryClock()
    if mode == "process":
        job = LedgerJob(config["recent_limit"], config["views"])
        outputs = [
            app.topic(name, key_serializer="bytes", value_serializer=Payload())
            for name in config["outputs"]
        ]
        sdf = sdf.apply(job, stateful=True, expand=True)
        sdf.to_topic(lambda value, key, ts, headers: outputs[value[0]], key=lambda value: value[1])
    else:
        job = FillJob()
        sdf.update(job, stateful=True)
        logging.getLogger("quixstreams.state.recovery").addHandler(clock)
    stop = threading.Event()
    threading.Thread(target=report_progress, args=(job, stop), daemon=True).start()
    emit("ready", **versions())
    started_at = time.time()
    app.run(timeout=config["idle_timeout"]) if mode == "recover" else app.run()
    stop.set()
    emit(
        "report",
        mode=mode,
        processed=job.processed,
        first_at=job.first_at,
        last_at=job.last_at,
        started_at=started_at,
        recovery_began_at=clock.began_at,
        recovery_completed_at=clock.completed_at,
        recovered_partitions=clock.partitions,
        rss_bytes=rss_bytes(),
        **versions(),
    )


if __name__ == "__main__":
    main()
