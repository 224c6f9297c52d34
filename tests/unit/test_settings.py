"""Settings precedence: explicit arguments > environment > defaults; clear validation."""

import pytest

from topology.settings import AUTO_STANDBYS, ENVIRONMENT, Settings

ENV = {
    "EVENTLEDGER_APP_ID": "from-env",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    "EVENTLEDGER_PARTITIONS": "12",
    "EVENTLEDGER_BATCH_MAX_COMMANDS": "500",
    "EVENTLEDGER_BATCH_MAX_MS": "5.5",
    "EVENTLEDGER_IDEMPOTENCY_WINDOW_MS": "8000",
    "EVENTLEDGER_TRANSACTION_TIMEOUT_MS": "30000",
    "EVENTLEDGER_REPLY_LANES": "3",
    "EVENTLEDGER_STATE_DIR": "/var/lib/el",
    "EVENTLEDGER_REPLICATION_FACTOR": "3",
    "EVENTLEDGER_MIN_INSYNC_REPLICAS": "2",
    "EVENTLEDGER_PARTITION_RESOURCE": "slot",
    "EVENTLEDGER_ACTOR_MEMORY_MB": "64",
    "EVENTLEDGER_AGGREGATE_BYTES": "512",
    "EVENTLEDGER_READ_WAIT_MS": "50",
    "EVENTLEDGER_STANDBYS": "2",
    "EVENTLEDGER_WRITER_SUSPECT_MS": "750",
    "EVENTLEDGER_SLOTS_PER_PARTITION": "120",
}


def test_defaults() -> None:
    assert Settings.resolve(environ={}) == Settings(
        app_id="eventledger",
        bootstrap_servers="127.0.0.1:9092",
        partitions=4,
        batch_max_commands=1000,
        batch_max_ms=20.0,
        idempotency_window_ms=24 * 60 * 60 * 1000,
        transaction_timeout_ms=10_000,
        state_dir="~/.cache/eventledger/state",
    )


def test_environment_beats_defaults() -> None:
    assert Settings.resolve(environ=ENV) == Settings(
        "from-env", "kafka:9092", 12, 500, 5.5, 8000, 30000, 3, "/var/lib/el",
        replication_factor=3, min_insync_replicas=2, partition_resource="slot",
        actor_memory_mb=64, aggregate_bytes=512, read_wait_ms=50, standbys=2,
        writer_suspect_ms=750, slots_per_partition=120,
    )  # fmt: skip


def test_explicit_arguments_beat_the_environment() -> None:
    settings = Settings.resolve(
        app_id="explicit",
        bootstrap_servers="broker:1",
        partitions=3,
        batch_max_commands=10,
        batch_max_ms=1.0,
        idempotency_window_ms=2000,
        transaction_timeout_ms=2000,
        reply_lanes=2,
        state_dir="/tmp/el",
        replication_factor=1,
        min_insync_replicas=1,
        partition_resource="",
        actor_memory_mb=32,
        aggregate_bytes=0,
        read_wait_ms=0,
        standbys=0,
        writer_suspect_ms=0,
        slots_per_partition=16,
        environ=ENV,
    )
    assert settings == Settings(
        "explicit", "broker:1", 3, 10, 1.0, 2000, 2000, 2, "/tmp/el",
        replication_factor=1, min_insync_replicas=1, partition_resource="",
        actor_memory_mb=32, aggregate_bytes=0, read_wait_ms=0, standbys=0,
        writer_suspect_ms=0, slots_per_partition=16,
    )  # fmt: skip


def test_none_arguments_fall_through_to_the_environment() -> None:
    assert Settings.resolve(partitions=None, environ=ENV).partitions == 12


def test_blank_environment_values_count_as_unset() -> None:
    assert Settings.resolve(environ={"EVENTLEDGER_PARTITIONS": "  "}).partitions == 4


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLEDGER_APP_ID", "from-os")
    monkeypatch.delenv("EVENTLEDGER_PARTITIONS", raising=False)
    assert Settings.resolve().app_id == "from-os"


def test_every_field_has_an_environment_variable() -> None:
    # `kafka` and `api_kafka` come from the EVENTLEDGER_KAFKA_* and EVENTLEDGER_API_KAFKA_*
    # variables (tests/unit/test_kafka_properties.py).
    assert {*ENVIRONMENT, "kafka", "api_kafka"} == set(Settings.__dataclass_fields__)
    assert set(ENVIRONMENT.values()) == set(ENV)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EVENTLEDGER_PARTITIONS", "four"),
        ("EVENTLEDGER_PARTITIONS", "2.5"),
        ("EVENTLEDGER_BATCH_MAX_MS", "fast"),
    ],
)
def test_unparsable_environment_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        Settings.resolve(environ={variable: value})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"partitions": 0}, "partitions"),
        ({"batch_max_commands": 0}, "batch_max_commands"),
        ({"idempotency_window_ms": 999}, "idempotency_window_ms"),
        ({"state_dir": " "}, "state_dir"),
        ({"transaction_timeout_ms": 0}, "transaction_timeout_ms"),
        ({"batch_max_ms": 0.0}, "batch_max_ms"),
        ({"batch_max_ms": 20_000.0}, "batch_max_ms"),
        ({"app_id": "has space"}, "app_id"),
        ({"app_id": "x" * 201}, "app_id"),
        ({"bootstrap_servers": " "}, "bootstrap_servers"),
        ({"slots_per_partition": 0}, "slots_per_partition"),
        ({"partitions": 274}, "65535"),
        ({"partitions": 2, "slots_per_partition": 32_768}, "65535"),
    ],
)
def test_invalid_settings_are_rejected(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.resolve(environ={}, **arguments)  # type: ignore[arg-type]


def test_an_application_takes_240_slots_per_partition_up_to_65535() -> None:
    settings = Settings.resolve(environ={})
    assert (settings.slots_per_partition, settings.slots) == (240, 960)
    assert Settings.resolve(partitions=273, environ={}).slots == 65_520


def test_settings_are_immutable() -> None:
    settings = Settings.resolve(environ={})
    with pytest.raises(AttributeError):
        settings.partitions = 8  # type: ignore[misc]


def test_a_partition_actor_reserves_a_slot_and_memory_for_its_aggregates() -> None:
    settings = Settings.resolve(environ={})
    assert settings.reservation().resources == {"eventledger_partition": 1.0}
    assert settings.reservation().memory == 128 * 1024**2
    assert settings.reservation(10_000).memory == 128 * 1024**2 + 10_000 * 1024
    bare = Settings.resolve(partition_resource="", actor_memory_mb=1, environ={})
    assert bare.reservation(3).resources == {}
    with pytest.raises(ValueError, match="actor_memory_mb"):
        Settings.resolve(actor_memory_mb=0, environ={})


def test_standbys_auto_means_one_on_two_nodes_or_more() -> None:
    auto = Settings.resolve(environ={"EVENTLEDGER_STANDBYS": "auto"})
    assert auto.standbys == AUTO_STANDBYS == Settings.resolve(environ={}).standbys
    assert [auto.standbys_for(n) for n in (0, 1, 2, 5)] == [0, 0, 1, 1]
    assert auto.max_standbys == 1
    two = Settings.resolve(standbys=2, environ={})
    assert [two.standbys_for(n) for n in (1, 2)] == [2, 2]
    assert two.max_standbys == 2
    with pytest.raises(ValueError, match="standbys"):
        Settings.resolve(standbys=-2, environ={})
