"""librdkafka properties passed through to every Kafka client, with secrets kept out of sight.

Any librdkafka property (SASL, SSL, ``client.id``, tuning) can be given in a Java-style
properties file and in ``EVENTLEDGER_KAFKA_<PROPERTY>`` environment variables: upper case,
``.`` written ``_``, a literal ``_`` written ``__`` (``EVENTLEDGER_KAFKA_SASL_PASSWORD`` is
``sasl.password``, ``EVENTLEDGER_KAFKA_LOG__LEVEL`` is ``log_level``); a variable beats the file.
Properties that carry the service's guarantees are set by eventledger and refused here.
The API tier's own properties (its Kafka principal) are read the same way from
``EVENTLEDGER_API_KAFKA_*`` and ``EVENTLEDGER_API_KAFKA_PROPERTIES_FILE``.

Invariant: a secret's value never appears in a ``repr``, a ``str`` or an error message of
this module; only ``client_config()`` hands it out, to the Kafka client.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Self

__all__ = [
    "API_ENV_PREFIX",
    "ENV_PREFIX",
    "PROPERTIES_FILE",
    "PROPERTIES_FILE_ENV",
    "RESERVED",
    "KafkaProperties",
    "is_secret",
    "parse_properties",
]

ENV_PREFIX: Final = "EVENTLEDGER_KAFKA_"
API_ENV_PREFIX: Final = "EVENTLEDGER_API_KAFKA_"
"""The API tier's own properties (``Settings.api_kafka``)."""
PROPERTIES_FILE: Final = "PROPERTIES_FILE"
PROPERTIES_FILE_ENV: Final = ENV_PREFIX + PROPERTIES_FILE
"""The one variable under a prefix that is no property: the properties file's path."""

RESERVED: Final = frozenset(
    {
        "transactional.id",
        "transaction.timeout.ms",
        "enable.idempotence",
        "isolation.level",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "partitioner",
        "group.id",
        "acks",
    }
)
"""Properties eventledger sets itself: exactly-once and routing depend on them."""

_SECRET_WORDS: Final = ("password", "secret", "sasl.oauthbearer.config", "ssl.key.pem")
_MASK: Final = "***"


def is_secret(name: str) -> bool:
    """Whether the property's value must never be shown (passwords, keys, tokens)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def parse_properties(text: str, *, source: str) -> dict[str, str]:
    """``name=value`` (or ``name: value``) lines; ``#`` and ``!`` start comments. Raises
    ValueError naming the line (never its value, which may be a secret)."""
    properties: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise ValueError(f"{source} line {number}: expected name=value")
        properties[line[:cut].strip()] = line[cut + 1 :].strip()
    return properties


def _from_environ(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    found = {}
    for variable, value in environ.items():
        if not variable.startswith(prefix) or variable == prefix + PROPERTIES_FILE:
            continue
        tail = variable[len(prefix) :].lower()
        found["_".join(piece.replace("_", ".") for piece in tail.split("__"))] = value
    return found


@dataclass(frozen=True)
class KafkaProperties:
    """Pass-through librdkafka properties, in a stable order; picklable (they cross Ray)."""

    items: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name, _ in self.items:
            if not name or name != name.strip():
                raise ValueError(f"bad Kafka property name {name!r}")
            if name in RESERVED:
                raise ValueError(f"Kafka property {name!r} is set by eventledger; remove it")

    @classmethod
    def of(cls, *layers: Mapping[str, str]) -> Self:
        """Later layers beat earlier ones (file, then environment, then explicit)."""
        merged: dict[str, str] = {}
        for layer in layers:
            merged.update(layer)
        return cls(tuple(sorted(merged.items())))

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str],
        file_text: str | None,
        source: str,
        prefix: str = ENV_PREFIX,
    ) -> Self:
        """The properties file (if any) overlaid by the ``{prefix}*`` variables."""
        from_file = parse_properties(file_text, source=source) if file_text is not None else {}
        return cls.of(from_file, _from_environ(environ, prefix))

    def get(self, name: str) -> str | None:
        return dict(self.items).get(name)

    def client_config(self) -> dict[str, str]:
        """The properties for a client config, secrets included; ``bootstrap.servers`` is
        left out (``Settings.bootstrap_servers`` carries it)."""
        return {k: v for k, v in self.items if k != "bootstrap.servers"}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_MASK if is_secret(k) else v}" for k, v in self.items)
        return f"KafkaProperties({shown})"

    __str__ = __repr__
