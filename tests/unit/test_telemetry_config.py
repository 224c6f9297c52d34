"""Which OTLP signals are exported (general and signal-specific endpoints, OTEL_SDK_DISABLED),
and the messaging attributes' server address."""

import pytest

from actors.messaging import Operation, attributes, server
from actors.tracing import sdk_disabled, wanted_signals


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, (False, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, (True, True)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, (True, False)),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}, (False, True)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"},
         (False, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"},
         (True, True)),
    ],
)  # fmt: skip
def test_signals_follow_their_endpoints_unless_the_sdk_is_disabled(
    environ: dict[str, str], expected: tuple[bool, bool]
) -> None:
    assert wanted_signals(environ) == expected


def test_sdk_disabled_is_true_only_when_it_says_true() -> None:
    assert sdk_disabled({"OTEL_SDK_DISABLED": " True "})
    assert not sdk_disabled({"OTEL_SDK_DISABLED": "1"})
    assert not sdk_disabled({})


def test_server_attributes_name_the_first_bootstrap_server() -> None:
    assert server("b-1.kafka:9092,b-2.kafka:9092") == {
        "server.address": "b-1.kafka",
        "server.port": 9092,
    }
    assert server("[::1]:9093") == {"server.address": "::1", "server.port": 9093}
    assert server("kafka") == {"server.address": "kafka"}


def test_attributes_by_the_messaging_conventions() -> None:
    found = attributes(
        Operation.PROCESS, "process", "app.commands", 3, key=b"acct", offset=7, group="g"
    )
    assert found == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "app.commands",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.message.key": "acct",
        "messaging.kafka.offset": 7,
        "messaging.consumer.group.name": "g",
    }
