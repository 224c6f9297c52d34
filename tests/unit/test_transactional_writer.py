"""The transactional writer without a broker: a scripted producer stands in for
confluent-kafka's, so each path (lazy creation, retries, classification, commit or abort,
re-creation after a fatal error, refusal after a fence) is checked in microseconds."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from actors.kafka import AbortableError, FatalError, FencedError
from actors.transactional import TransactionalWriter
from topology.settings import Settings

SETTINGS = Settings.resolve(app_id="w", bootstrap_servers="127.0.0.1:1", environ={})


def exc(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "test", **flags))


class Script:
    """What the fake producers do: errors to raise per call name, in turn, and a log."""

    def __init__(self, **errors: list[BaseException]) -> None:
        self.errors = errors
        self.calls: list[str] = []
        self.created = 0

    def factory(self, config: dict[str, Any]) -> FakeProducer:
        assert config["transactional.id"] == "w-t"
        self.created += 1
        return FakeProducer(self)

    def call(self, name: str) -> None:
        self.calls.append(name)
        pending = self.errors.get(name)
        if pending:
            raise pending.pop(0)


class FakeProducer:
    def __init__(self, script: Script) -> None:
        self.script = script

    def init_transactions(self, timeout: float) -> None:
        self.script.call("init")

    def begin_transaction(self) -> None:
        self.script.call("begin")

    def produce(self, topic: str, value: Any, key: Any, partition: int, **kw: Any) -> None:
        self.script.call("produce")

    def poll(self, timeout: float) -> int:
        self.script.call("poll")
        return 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.script.call("list_topics")

    def commit_transaction(self, timeout: float) -> None:
        self.script.call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self.script.call("abort")


def writer(script: Script) -> TransactionalWriter:
    return TransactionalWriter(SETTINGS, "w-t", factory=script.factory)


def test_the_producer_is_created_on_first_use_and_init_retried() -> None:
    script = Script(init=[exc(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)] * 3)
    w = writer(script)
    assert script.created == 0
    with w.transaction():
        w.produce("t", b"v", b"k", 0)
    assert script.calls == ["init"] * 4 + ["begin", "produce", "commit"]
    assert script.created == 1


def test_a_body_that_raises_aborts_and_the_error_passes_through() -> None:
    script = Script()
    w = writer(script)
    with pytest.raises(ValueError, match="boom"), w.transaction():
        raise ValueError("boom")
    assert script.calls[-2:] == ["begin", "abort"]


def test_a_full_queue_is_polled_then_abortable() -> None:
    script = Script(produce=[BufferError()] * 100)
    w = writer(script)
    with pytest.raises(AbortableError, match="queue"), w.transaction():
        w.produce("t", b"v", b"k", 0)
    assert "poll" in script.calls and script.calls[-1] == "abort"


def test_a_full_queue_that_drains_is_no_error() -> None:
    script = Script(produce=[BufferError(), BufferError()])
    w = writer(script)
    with w.transaction():
        w.produce("t", b"v", b"k", 0)
    assert script.calls[-1] == "commit"


def test_an_abortable_commit_is_aborted() -> None:
    script = Script(commit=[exc(KafkaError._STATE, txn_requires_abort=True)])
    w = writer(script)
    with pytest.raises(AbortableError), w.transaction():
        w.produce("t", b"v", b"k", 0)
    assert script.calls[-2:] == ["commit", "abort"]


def test_a_timed_out_commit_recreates_the_producer_on_next_use() -> None:
    script = Script(commit=[exc(KafkaError._TIMED_OUT, retriable=True)])
    w = writer(script)
    with pytest.raises(FatalError, match="timed out ending"), w.transaction():
        w.produce("t", b"v", b"k", 0)
    assert script.calls.count("commit") == 1, "never called again: it might land late"
    assert "abort" not in script.calls
    with w.transaction():
        w.produce("t", b"v", b"k", 0)
    assert script.created == 2 and w.recreations == 1


def test_a_failed_abort_recreates_the_producer() -> None:
    script = Script(
        produce=[exc(KafkaError._STATE, txn_requires_abort=True)],
        abort=[exc(KafkaError._TIMED_OUT, retriable=True)],
    )
    w = writer(script)
    with pytest.raises(AbortableError), w.transaction():
        w.produce("t", b"v", b"k", 0)
    w.open()
    assert script.created == 2


def test_reset_recreates_on_next_use() -> None:
    script = Script()
    w = writer(script)
    w.open()
    w.reset()
    w.open()
    assert script.created == 2 and script.calls == ["init", "init"]


def test_a_fenced_writer_refuses_for_good() -> None:
    script = Script(begin=[exc(KafkaError._FENCED, fatal=True)])
    w = writer(script)
    with pytest.raises(FencedError), w.transaction():
        pass
    with pytest.raises(FencedError, match="fenced earlier"), w.transaction():
        pass
    assert script.created == 1


def test_a_retriable_commit_is_called_again() -> None:
    script = Script(commit=[exc(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)])
    w = writer(script)
    with w.transaction():
        w.produce("t", b"v", b"k", 0)
    assert script.calls[-2:] == ["commit", "commit"]


def test_renew_replaces_the_producer_at_once() -> None:
    script = Script()
    w = writer(script)
    w.open()
    w.renew()
    assert script.created == 2 and script.calls == ["init", "init"] and w.renewals == 1


def test_a_stale_fence_is_fatal_by_default_and_final_when_asked() -> None:
    for final in (False, True):
        script = Script(commit=[exc(KafkaError._FENCED, fatal=True)])
        w = TransactionalWriter(
            SETTINGS, "w-t", factory=script.factory, stale_fence_is_fatal=not final
        )
        w.begin()
        w._begun_at -= 3_600  # the transaction outlived transaction.timeout.ms
        with pytest.raises(FatalError) as caught:
            w.commit()
        assert isinstance(caught.value, FencedError) is final
        assert (w.fenced is not None) is final


def test_quick_asks_make_a_new_producer_per_refused_ask_then_fall_back_to_the_policy() -> None:
    timed_out = exc(KafkaError._TIMED_OUT)
    script = Script(init=[timed_out, exc(KafkaError.CONCURRENT_TRANSACTIONS, retriable=True)])
    w = TransactionalWriter(SETTINGS, "w-t", factory=script.factory, quick_asks=6)
    w.open()
    assert (script.created, script.calls) == (3, ["init"] * 3)  # the third ask is granted
    slow = Script(init=[timed_out, timed_out, exc(KafkaError._TIMED_OUT)])
    w = TransactionalWriter(SETTINGS, "w-t", factory=slow.factory, quick_asks=2)
    w.open()  # two quick asks refused, then the policy's producer, retried once
    assert (slow.created, slow.calls) == (3, ["init"] * 4)


def test_a_quick_ask_that_is_fenced_raises_at_once() -> None:
    script = Script(init=[exc(KafkaError.PRODUCER_FENCED)])
    w = TransactionalWriter(SETTINGS, "w-t", factory=script.factory, quick_asks=6)
    with pytest.raises(FencedError):
        w.open()
    assert script.created == 1


def test_a_partition_added_since_the_producer_was_made_is_looked_up_then_produced_to() -> None:
    script = Script(produce=[exc(KafkaError._UNKNOWN_PARTITION)])
    w = writer(script)
    with w.transaction():
        w.produce("t", b"v", b"k", 3)
    assert script.calls == ["init", "begin", "produce", "list_topics", "produce", "commit"]
    assert script.created == 1  # the same producer: no restart, no new epoch


def test_a_partition_still_unknown_after_a_lookup_fails_as_before() -> None:
    unknown = exc(KafkaError._UNKNOWN_PARTITION)
    script = Script(produce=[unknown, unknown])
    w = writer(script)
    with pytest.raises(FatalError), w.transaction():
        w.produce("t", b"v", b"k", 9)
    assert script.calls.count("list_topics") == 1
