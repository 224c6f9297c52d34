"""How Kafka errors are classified: retry, abort the batch, or treat the producer as dead."""

import pytest
from confluent_kafka import KafkaError, KafkaException

from actors.kafka import (
    AbortableError,
    FatalError,
    FencedError,
    KafkaClientError,
    RetriableError,
    classify,
)


def exc(
    code: int, *, fatal: bool = False, retriable: bool = False, abortable: bool = False
) -> KafkaException:
    error = KafkaError(code, "test", fatal=fatal, retriable=retriable, txn_requires_abort=abortable)
    return KafkaException(error)


@pytest.mark.parametrize(
    ("error", "during", "kind"),
    [
        (exc(KafkaError._FENCED, fatal=True), "commit", FencedError),
        (exc(KafkaError.PRODUCER_FENCED), "begin", FencedError),
        (exc(KafkaError.INVALID_PRODUCER_EPOCH, abortable=True), "produce", FencedError),
        (exc(KafkaError._TIMED_OUT, retriable=True), "commit", FatalError),
        (exc(KafkaError._TIMED_OUT, retriable=True), "abort", FatalError),
        (exc(KafkaError._TIMED_OUT, retriable=True), "send_offsets", RetriableError),
        (exc(KafkaError.NOT_COORDINATOR), "committed", RetriableError),
        (exc(KafkaError._STATE, abortable=True), "produce", AbortableError),
        (exc(KafkaError.UNKNOWN, fatal=True), "commit", FatalError),
        (exc(KafkaError.INVALID_CONFIG), "begin", FatalError),
    ],
)
def test_classification(error: KafkaException, during: str, kind: type) -> None:
    classified = classify(error, during=during)
    assert type(classified) is kind
    assert during in str(classified)


def test_a_timed_out_end_of_transaction_says_why_it_is_fatal() -> None:
    classified = classify(exc(KafkaError._TIMED_OUT, retriable=True), during="commit")
    assert "timed out ending a transaction" in str(classified)


def test_an_exception_without_a_kafka_error_is_fatal() -> None:
    classified = classify(KafkaException("opaque"), during="produce")
    assert isinstance(classified, FatalError) and isinstance(classified, KafkaClientError)
    assert classified.error is None
