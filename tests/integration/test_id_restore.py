"""The id memory's restore on the real broker: a local store that lacks ids its changelog
holds (it lost them) is not trusted but rebuilt from the window's start, and a checkpoint
mark that even the changelog lacks stops the partition rather than let it run behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from confluent_kafka import Producer

from actors.admin import ensure_topics
from actors.channel import now_ms
from actors.idstore import IdMemoryBehindError, IdStore
from actors.kafka import bootstrap_config
from topology.codec.keys import encode_id_key
from topology.settings import Settings
from topology.topics import TopicKind, TopicLayout


def _remember(settings: Settings, partition: int, count: int) -> dict[bytes, bytes]:
    """`count` remembered replies written to the changelog of `partition` (lane 0)."""
    layout = TopicLayout.of(settings)
    producer = Producer(bootstrap_config(settings.bootstrap_servers))
    replies = {encode_id_key("acct", f"cmd-{i}"): os.urandom(40) for i in range(count)}
    for key, value in replies.items():
        producer.produce(
            layout.name(TopicKind.REPLIES), value, key, layout.reply_partition(partition, 0)
        )
    assert producer.flush(30) == 0
    return replies


def test_a_store_that_lost_ids_is_rebuilt_and_a_missing_mark_stops_the_partition(
    settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(settings.bootstrap_servers, TopicLayout.of(settings))
    replies = _remember(settings, 0, 200)
    last = list(replies)[-1]
    reply_partition = TopicLayout.of(settings).reply_partition(0, 0)
    marks = {reply_partition: (last, now_ms())}

    ids = IdStore(tmp_path / "ids", ttl_seconds=3600)
    first = ids.restore(settings, 0, now_ms(), expect=marks)
    assert (first.installed, first.reused) == (200, False)

    for key in list(replies)[150:]:  # the store loses its last ids, keeping its position
        ids._db.delete(key)
    again = ids.restore(settings, 0, now_ms(), expect=marks, wait=1.0)
    assert again.reused is False  # wiped and read from the window's start
    assert ids.lookup(list(replies)) == list(replies.values())

    unknown = {reply_partition: (encode_id_key("acct", "never-written"), now_ms())}
    with pytest.raises(IdMemoryBehindError, match="lack the checkpoint's last"):
        ids.restore(settings, 0, now_ms(), expect=unknown, wait=1.0)
    ids.close()
