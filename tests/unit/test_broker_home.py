"""The local broker's configurations as written: the default one is plain and open; the
secured one adds a SASL/PLAIN listener and, with super users, Kafka's authorizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventledger.broker import BrokerHome

_USERS = (("admin", "a"), ("api", "b"))


def test_the_default_broker_has_no_sasl_and_no_authorizer() -> None:
    written = BrokerHome(path=Path("/b")).server_properties()
    assert "SASL" not in written and "authorizer" not in written and "super.users" not in written


def test_super_users_turn_the_authorizer_on_above_the_plain_listener() -> None:
    plain_sasl = BrokerHome(path=Path("/b"), sasl_port=9094, sasl_users=_USERS)
    assert "authorizer" not in plain_sasl.server_properties()
    home = BrokerHome(path=Path("/b"), sasl_port=9094, sasl_users=_USERS, super_users=("admin",))
    lines = home.server_properties().splitlines()
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in lines
    assert "super.users=User:ANONYMOUS;User:admin" in lines
    assert not any(line.startswith("allow.everyone.if.no.acl.found") for line in lines)


def test_a_super_user_must_be_a_sasl_user() -> None:
    with pytest.raises(ValueError, match="super users must be SASL users"):
        BrokerHome(path=Path("/b"), sasl_port=9094, sasl_users=_USERS, super_users=("root",))
