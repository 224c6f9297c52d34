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
    retrying,
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


def flaky(*errors: KafkaException) -> tuple[list[int], object]:
    """A call that raises ``errors`` in turn, then returns how many calls it took."""
    calls: list[int] = []

    def call() -> int:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return len(calls)

    return calls, call


def test_retrying_calls_again_while_retriable() -> None:
    calls, call = flaky(exc(KafkaError.NOT_COORDINATOR), exc(KafkaError._TRANSPORT))
    assert retrying("test", call, attempts=5) == 3  # type: ignore[arg-type]
    assert len(calls) == 3


def test_retrying_gives_up_at_once_on_what_is_not_retriable() -> None:
    fenced = exc(KafkaError._FENCED, fatal=True)
    calls, call = flaky(fenced)
    with pytest.raises(KafkaException) as caught:
        retrying("test", call, attempts=5)  # type: ignore[arg-type]
    assert caught.value is fenced and len(calls) == 1


def test_retrying_gives_up_after_its_attempts() -> None:
    calls, call = flaky(*[exc(KafkaError.NOT_COORDINATOR)] * 3)
    with pytest.raises(KafkaException):
        retrying("test", call, attempts=2)  # type: ignore[arg-type]
    assert len(calls) == 2


@pytest.mark.parametrize("during", ["commit", "abort"])
def test_a_timed_out_commit_or_abort_is_never_retried(during: str) -> None:
    """librdkafka has no KIP-890 protection: a late end of transaction could end the wrong
    one, so the caller must re-create the producer instead (a label never hides this)."""
    timed_out = exc(KafkaError._TIMED_OUT)
    calls, call = flaky(timed_out)
    with pytest.raises(KafkaException) as caught:
        retrying(during, call, attempts=5, who="partition 3")  # type: ignore[arg-type]
    assert caught.value is timed_out and len(calls) == 1


def test_other_calls_that_time_out_are_retried() -> None:
    _calls, call = flaky(exc(KafkaError._TIMED_OUT))
    assert retrying("init_transactions", call, attempts=5, who="p") == 2  # type: ignore[arg-type]
