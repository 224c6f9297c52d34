"""Pass-through Kafka properties: file < environment < explicit, secrets never shown, the
guarantees' properties refused, and every client config carries them."""

import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.kafka import (
    LIBRDKAFKA_LOG,
    admin_config,
    bootstrap_config,
    consumer_config,
    producer_config,
)
from topology.connection import KafkaProperties, is_secret, parse_properties
from topology.settings import Settings, configured_bootstrap

SECRET = "s3cr3t-value-1234"
_API_SECRET = "api-pw-5678"


def test_environment_variables_name_properties() -> None:
    found = KafkaProperties.resolve(
        {
            "EVENTLEDGER_KAFKA_SASL_MECHANISM": "PLAIN",
            "EVENTLEDGER_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
            "EVENTLEDGER_KAFKA_LOG__LEVEL": "6",
            "EVENTLEDGER_APP_ID": "not-a-property",
        },
        None,
        source="-",
    )
    assert dict(found.items) == {
        "sasl.mechanism": "PLAIN",
        "ssl.ca.location": "/etc/ca.pem",
        "log_level": "6",
    }


def test_file_then_environment_then_explicit(tmp_path: Path) -> None:
    file = tmp_path / "k.properties"
    file.write_text(
        "# comment\n! also a comment\n\nbootstrap.servers = b1:9093\n"
        "security.protocol=SASL_SSL\nclient.id: from-file\nsasl.password=a=b\n"
    )
    env = {
        "EVENTLEDGER_KAFKA_PROPERTIES_FILE": str(file),
        "EVENTLEDGER_KAFKA_CLIENT_ID": "from-env",
    }
    settings = Settings.resolve(app_id="x", environ=env, kafka={"linger.ms": "5"})
    assert settings.bootstrap_servers == "b1:9093"  # the file's, no KAFKA_BOOTSTRAP_SERVERS
    assert dict(settings.kafka.items) == {
        "bootstrap.servers": "b1:9093",
        "security.protocol": "SASL_SSL",
        "client.id": "from-env",
        "sasl.password": "a=b",
        "linger.ms": "5",
    }
    assert configured_bootstrap(env) == "b1:9093"
    assert configured_bootstrap({**env, "KAFKA_BOOTSTRAP_SERVERS": "k:1"}) == "k:1"
    assert configured_bootstrap({}) is None


@pytest.mark.parametrize("name", ["transactional.id", "isolation.level", "enable.idempotence"])
def test_the_guarantees_properties_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="set by eventledger"):
        Settings.resolve(app_id="x", environ={}, kafka={name: "v"})


def test_a_bad_line_names_the_line_not_its_value() -> None:
    with pytest.raises(ValueError, match=r"f line 2") as caught:
        parse_properties(f"a=1\n{SECRET}\n", source="f")
    assert SECRET not in str(caught.value)


def test_a_missing_file_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="EVENTLEDGER_KAFKA_PROPERTIES_FILE=/nonexistent"):
        Settings.resolve(environ={"EVENTLEDGER_KAFKA_PROPERTIES_FILE": "/nonexistent"})


@pytest.mark.parametrize(
    "name",
    ["sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.config",
     "sasl.oauthbearer.client.secret", "ssl.key.pem"],
)  # fmt: skip
def test_secrets_are_masked_in_every_rendering(name: str) -> None:
    settings = Settings.resolve(app_id="x", environ={}, kafka={name: SECRET, "client.id": "me"})
    assert is_secret(name)
    for shown in (repr(settings), str(settings), repr(settings.kafka), f"{settings.kafka}"):
        assert SECRET not in shown
        assert "client.id=me" in shown
    assert pickle.loads(pickle.dumps(settings)) == settings  # crosses Ray calls


_NAMES = st.from_regex(r"[a-z]{1,6}(\.[a-z]{1,6}){0,3}", fullmatch=True)
_VALUES = st.text(st.characters(blacklist_categories=["Cc", "Cs"]), max_size=8)


@given(st.dictionaries(_NAMES, _VALUES))
def test_properties_round_trip_through_the_environment(props: dict[str, str]) -> None:
    props = {k: v for k, v in props.items() if k != "properties.file"}
    env = {"EVENTLEDGER_KAFKA_" + k.replace(".", "_").upper(): v for k, v in props.items()}
    try:
        found = KafkaProperties.resolve(env, None, source="-")
    except ValueError:  # a reserved name drawn
        return
    assert dict(found.items) == props


def test_every_client_config_carries_the_properties_and_keeps_the_guarantees() -> None:
    settings = Settings.resolve(
        app_id="app",
        bootstrap_servers="k:9092",
        environ={},
        kafka={"security.protocol": "SASL_SSL", "sasl.password": SECRET, "linger.ms": "7"},
    )
    producer = producer_config(settings, transactional_id="app-0")
    consumer = consumer_config(settings, group_id="g")
    admin = admin_config(settings)
    for config in (producer, consumer, admin, bootstrap_config("k:9092")):
        assert config["logger"] is LIBRDKAFKA_LOG, "librdkafka logs into Python logging"
    for config in (producer, consumer, admin):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.password"] == SECRET
        assert config["bootstrap.servers"] == "k:9092"
        assert config["client.id"] == "app"
    assert producer["linger.ms"] == "7"
    assert producer["transactional.id"] == "app-0" and producer["enable.idempotence"] is True
    assert consumer["isolation.level"] == "read_committed"


def test_replication_settings() -> None:
    assert Settings.resolve(environ={}).replication_factor == -1
    env = {"EVENTLEDGER_REPLICATION_FACTOR": "3", "EVENTLEDGER_MIN_INSYNC_REPLICAS": "2"}
    settings = Settings.resolve(environ=env)
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    with pytest.raises(ValueError, match="must not exceed"):
        Settings.resolve(replication_factor=1, min_insync_replicas=2, environ={})
    with pytest.raises(ValueError, match="replication_factor"):
        Settings.resolve(replication_factor=0, environ={})


def test_the_api_tier_has_its_own_properties_replacing_the_services_whole(
    tmp_path: Path,
) -> None:
    api_file = tmp_path / "api.properties"
    api_file.write_text("bootstrap.servers=api-k:9093\nsasl.username=api\nsecurity.protocol=SSL\n")
    env = {
        "EVENTLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "EVENTLEDGER_KAFKA_SASL_USERNAME": "worker",
        "EVENTLEDGER_KAFKA_SASL_PASSWORD": SECRET,
        "EVENTLEDGER_API_KAFKA_PROPERTIES_FILE": str(api_file),
        "EVENTLEDGER_API_KAFKA_SASL_PASSWORD": _API_SECRET,
    }
    settings = Settings.resolve(bootstrap_servers="k:9092", environ=env)
    assert settings.kafka.get("sasl.username") == "worker"
    assert settings.api_kafka is not None and settings.api_kafka.get("sasl.username") == "api"
    api = settings.for_api()
    assert dict(api.kafka.items) == {
        "bootstrap.servers": "api-k:9093",
        "sasl.username": "api",
        "sasl.password": _API_SECRET,
        "security.protocol": "SSL",  # the file's, not the service's SASL_SSL
    }
    assert api.bootstrap_servers == "api-k:9093" and api.api_kafka is None
    assert api.for_api() == api
    shown = repr(settings) + str(settings) + repr(api)
    assert SECRET not in shown and _API_SECRET not in shown
    assert all(SECRET not in str(v) for v in producer_config(api).values()), "none inherited"


def test_without_api_properties_the_api_tier_shares_the_services() -> None:
    settings = Settings.resolve(environ={"EVENTLEDGER_KAFKA_SASL_USERNAME": "ledger"})
    assert settings.api_kafka is None and settings.for_api() is settings
    explicit = Settings.resolve(environ={}, api_kafka={"sasl.username": "api"})
    assert explicit.for_api().kafka.get("sasl.username") == "api"
    with pytest.raises(ValueError, match="EVENTLEDGER_API_KAFKA_PROPERTIES_FILE"):
        Settings.resolve(environ={"EVENTLEDGER_API_KAFKA_PROPERTIES_FILE": "/nonexistent"})
    with pytest.raises(ValueError, match="set by eventledger"):
        Settings.resolve(environ={"EVENTLEDGER_API_KAFKA_TRANSACTIONAL_ID": "x"})
