"""The one id rule (topology.ids): what it takes and what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from topology.ids import (
    ID_PATTERN,
    MAX_CLIENT_ID_CHARS,
    InvalidIdError,
    check_command_id,
    check_id,
    check_principal,
    scoped,
)


@pytest.mark.parametrize("good", ["a", "acc-1", "team-a.x:7_z", "9", "A" * MAX_CLIENT_ID_CHARS])
def test_ids_within_the_rule_pass(good: str) -> None:
    assert check_id(good, "an account id") == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "-a",
        ".a",
        "a b",
        "a/b",
        "a\x00",
        "te\u202eam",
        "é",
        "a\n",
        "a" * (MAX_CLIENT_ID_CHARS + 1),
    ],
)
def test_ids_outside_the_rule_are_refused_by_name_not_value(bad: str) -> None:
    with pytest.raises(InvalidIdError) as refused:
        check_id(bad, "the Idempotency-Key")
    assert str(refused.value).startswith("the Idempotency-Key must be 1 to 128")
    assert bad not in str(refused.value) or bad == ""


@given(st.text(max_size=140))
def test_the_rule_is_the_documented_pattern(value: str) -> None:
    import re

    ok = re.fullmatch(ID_PATTERN, value) is not None
    try:
        check_id(value, "x")
    except InvalidIdError:
        assert not ok
    else:
        assert ok and value.isascii() and "/" not in value


@pytest.mark.parametrize("bad", ["", "a:b", "-a", "a b", "a" * 65, "te\u202eam"])
def test_a_principal_has_no_colon_and_at_most_64_characters(bad: str) -> None:
    with pytest.raises(InvalidIdError, match="principal's name must be"):
        check_principal(bad)


def test_a_scoped_id_reads_back_its_principal_and_key_and_no_two_principals_share_one() -> None:
    assert scoped("alice", "k:1") == "alice:k:1"
    assert scoped("alice", "k:1").partition(":")[::2] == ("alice", "k:1")
    with pytest.raises(InvalidIdError):
        scoped("a:b", "c")
    with pytest.raises(InvalidIdError, match="an idempotency key must be"):
        scoped("alice", "a/b")
    longest = scoped("n" * 64, "k" * MAX_CLIENT_ID_CHARS)
    assert check_command_id(longest) == longest
    with pytest.raises(InvalidIdError, match="a command id must be"):
        check_command_id("x/y")


@given(st.from_regex(ID_PATTERN.replace(":", ""), fullmatch=True), st.text(max_size=20))
def test_scoping_is_injective(principal: str, key: str) -> None:
    principal = principal[:64]
    try:
        one = scoped(principal, key)
    except InvalidIdError:
        return
    name, _, rest = one.partition(":")
    assert (name, rest) == (principal, key)
