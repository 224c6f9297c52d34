"""The transactional writer against the real broker: a commit that times out and a
transaction that outlives ``transaction.timeout.ms`` leave it usable (the next transaction
runs on a new producer), and only a real takeover of its id fences it for good."""

from __future__ import annotations

import time

import pytest

from actors.admin import ensure_topics
from actors.audit import read_named_topic
from actors.kafka import FatalError, FencedError, KafkaClientError
from actors.transactional import TransactionalWriter
from topology.settings import Settings
from topology.topics import TopicLayout


def _settings(bootstrap: str, app_id: str, **extra: int) -> Settings:
    return Settings.resolve(
        app_id=app_id, bootstrap_servers=bootstrap, partitions=1, environ={}, **extra
    )


def test_a_timed_out_commit_is_fatal_and_the_next_transaction_recovers(
    bootstrap: str, app_id: str
) -> None:
    settings = _settings(bootstrap, app_id)
    ensure_topics(bootstrap, TopicLayout.of(settings))
    topic = TopicLayout.of(settings).control
    writer = TransactionalWriter(settings, f"{app_id}-w", end_timeout=0)
    with pytest.raises(FatalError, match="timed out ending"), writer.transaction():
        writer.produce(topic, b"lost", b"k", 0)
    writer.end_timeout = 30
    with writer.transaction():
        writer.produce(topic, b"kept", b"k", 0)
    assert writer.recreations == 1
    assert [r.value() for r in read_named_topic(settings, topic)][-1] == b"kept"


def test_a_transaction_slower_than_its_timeout_is_not_taken_for_a_fence(
    bootstrap: str, app_id: str
) -> None:
    settings = _settings(bootstrap, app_id, transaction_timeout_ms=1000)
    ensure_topics(bootstrap, TopicLayout.of(settings))
    topic = TopicLayout.of(settings).control
    writer = TransactionalWriter(settings, f"{app_id}-w")
    with pytest.raises(FatalError) as caught, writer.transaction():
        writer.produce(topic, b"slow", b"k", 0)
        for _ in range(120):  # until the broker aborts it (the launcher sets its check to 1 s)
            time.sleep(0.5)  # the time passing is what is tested: a transaction kept open
            writer.produce(topic, b"slow", b"k", 0)
            writer.poll(0.1)
    assert not isinstance(caught.value, FencedError) and writer.fenced is None
    with writer.transaction():
        writer.produce(topic, b"kept", b"k", 0)
    assert writer.recreations == 1


def test_a_writer_whose_id_is_taken_over_is_fenced_for_good(bootstrap: str, app_id: str) -> None:
    settings = _settings(bootstrap, app_id)
    ensure_topics(bootstrap, TopicLayout.of(settings))
    topic = TopicLayout.of(settings).control
    old = TransactionalWriter(settings, f"{app_id}-w")
    old.open()
    TransactionalWriter(settings, f"{app_id}-w").open()  # the successor fences it
    with pytest.raises(FencedError), old.transaction():
        old.produce(topic, b"zombie", b"k", 0)
        old.poll(1.0)
    with pytest.raises(KafkaClientError, match="fenced earlier"):
        old.open()
