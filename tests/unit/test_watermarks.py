"""watermarks: a stale metadata view is refreshed, not reported; a real error is raised."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from actors.watermarks import watermarks


class StaleClient:
    """Says "unknown partition" until its metadata is fetched again (as librdkafka does when
    it fetched a topic's metadata while the broker restarted)."""

    def __init__(self, code: int = KafkaError._UNKNOWN_PARTITION) -> None:
        self.code = code
        self.refreshed: list[str] = []
        self.asked = 0

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        self.asked += 1
        if not self.refreshed:
            raise KafkaException(KafkaError(self.code))
        return 3, 17

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.refreshed.append(topic)
        return None


@pytest.mark.parametrize("code", [KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART])
def test_a_stale_view_is_fetched_again_and_the_offsets_answered(code: int) -> None:
    client = StaleClient(code)
    assert watermarks(client, TopicPartition("app.control", 0), timeout=5) == (3, 17)
    assert client.refreshed == ["app.control"]
    assert client.asked == 2


def test_an_error_that_is_not_transient_is_raised_at_once() -> None:
    client = StaleClient(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException) as raised:
        watermarks(client, TopicPartition("app.control", 0), timeout=5)
    assert raised.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert client.asked == 1 and client.refreshed == []


def test_a_view_that_never_clears_is_raised_after_the_timeout() -> None:
    class NeverClears(StaleClient):
        def list_topics(self, topic: str, timeout: float) -> Any:
            return None

    client = NeverClears()
    with pytest.raises(KafkaException):
        watermarks(client, TopicPartition("app.control", 0), timeout=1)
    assert client.asked >= 2
