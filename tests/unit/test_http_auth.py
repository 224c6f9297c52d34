"""Bearer tokens and scopes, problem statuses and money parsing of the HTTP API (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from eventledger.cli import app
from eventledger.http.auth import AuthError, Scope, TokenTable, hash_token, load_tokens, mint_token
from eventledger.http.bodies import AmountBody
from ledger import MAX_MINOR_UNITS


def _table() -> tuple[TokenTable, str, str]:
    reader, read_line = mint_token(frozenset({Scope.READ}), "reader")
    writer, write_line = mint_token(frozenset({Scope.WRITE}), "writer")
    return (
        TokenTable.parse(f"# tokens\n{read_line}\n\n{write_line}  # the writer\n"),
        reader,
        writer,
    )


def test_a_valid_token_gets_its_scopes_only() -> None:
    table, reader, writer = _table()
    assert table.authorize(f"Bearer {reader}", Scope.READ).name == "reader"
    assert table.authorize(f"bearer  {writer}", Scope.WRITE).name == "writer"
    with pytest.raises(AuthError) as refused:
        table.authorize(f"Bearer {reader}", Scope.WRITE)
    assert refused.value.status == 403 and refused.value.code == "insufficient_scope"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic eDp5", "Token abc"])
def test_no_bearer_token_is_401(header: str | None) -> None:
    table, _, _ = _table()
    with pytest.raises(AuthError) as refused:
        table.authorize(header, Scope.READ)
    assert refused.value.status == 401 and refused.value.code == "unauthenticated"


def test_an_unknown_token_is_401_and_only_hashes_are_kept() -> None:
    table, reader, _ = _table()
    with pytest.raises(AuthError) as refused:
        table.authorize(f"Bearer {reader}x", Scope.READ)
    assert refused.value.status == 401 and refused.value.code == "invalid_token"
    assert reader not in repr(table) and hash_token(reader) in table.grants


def test_insecure_grants_everything_and_nothing_else_does() -> None:
    assert TokenTable(insecure=True).authorize(None, Scope.WRITE).scopes == frozenset(Scope)
    with pytest.raises(AuthError):
        TokenTable().authorize("Bearer anything", Scope.READ)


H = "sha256:" + "0" * 64


@pytest.mark.parametrize(
    ("text", "why"),
    [("sha256:abc read me accounts=*", "expected"),
     ("md5:" + "0" * 64 + " read me accounts=*", "expected"),
     (f"{H} admin me accounts=*", "scopes are"),
     ("sha256:" + "g" * 64 + " read me accounts=*", "expected"),
     ("sha256:0x" + "0" * 62 + " read me accounts=*", "expected"),
     ("sha256:-" + "0" * 63 + " read me accounts=*", "expected"),
     ("sha256:" + "A" * 64 + " read me accounts=*", "expected"),
     (f"{H} read me", "expected"),
     (f"{H} read me team-a", "unexpected field"),
     (f"{H} read me accounts=a accounts=b", "unexpected field"),
     (f"{H} read -me accounts=*", "name must be"),
     (f"{H} read team:a accounts=*", "name must be"),
     (f"{H} read {'n' * 65} accounts=*", "name must be"),
     (f"{H} read me accounts=a/b", "account patterns"),
     (f"{H} read me accounts=*,", "account patterns"),
     (f"{H} read me accounts=* expires=tomorrow", "expires= is"),
     (H, "expected")],
)  # fmt: skip
def test_bad_lines_are_refused_and_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"token line 1: .*{why}"):
        TokenTable.parse(text)


def test_a_repeated_hash_or_name_is_refused_not_overridden() -> None:
    _, line = mint_token(frozenset({Scope.READ}), "a")
    _, other = mint_token(frozenset({Scope.READ}), "a")
    with pytest.raises(ValueError, match="token line 2: the same token hash"):
        TokenTable.parse(f"{line}\n{line.replace(' read ', ' read,write ')}")
    with pytest.raises(ValueError, match="token line 3: the name 'a'"):
        TokenTable.parse(f"{line}\n\n{other}")


@pytest.mark.parametrize("name", ["", "a b", "x\x00", "te\u202eam", "a/b", "-a", "a:b", "a" * 65])
def test_a_name_the_table_could_not_read_back_is_not_minted(name: str) -> None:
    with pytest.raises(ValueError, match="name must be"):
        mint_token(frozenset({Scope.READ}), name)


def test_a_grant_covers_only_the_accounts_its_patterns_match() -> None:
    token, line = mint_token(frozenset({Scope.READ}), "team-a", ["team-a-*", "shared"])
    grant = TokenTable.parse(line).authorize(f"Bearer {token}", Scope.READ)
    assert grant.accounts == ("team-a-*", "shared")
    assert grant.covers("team-a-x") and grant.covers("team-a-") and grant.covers("shared")
    for other in ("team-b-x", "team-a", "shared-2", "xteam-a-x", "TEAM-A-x"):
        assert not grant.covers(other), other
        with pytest.raises(AuthError) as refused:
            grant.require(other)
        assert (refused.value.status, refused.value.code) == (403, "forbidden_account")
    grant.require("team-a-1")


def test_an_expired_token_is_401_from_its_expiry_on() -> None:
    expires = datetime(2027, 1, 31, tzinfo=UTC)
    token, line = mint_token(frozenset({Scope.READ}), "temp", expires=expires)
    assert line.endswith(" expires=2027-01-31T00:00:00Z")
    now = [expires.timestamp() - 1]
    table = TokenTable.parse(line, clock=lambda: now[0])
    assert table.authorize(f"Bearer {token}", Scope.READ).expires == expires
    now[0] += 1
    with pytest.raises(AuthError, match="expired") as refused:
        table.authorize(f"Bearer {token}", Scope.READ)
    assert refused.value.status == 401


def test_the_token_command_mints_grants_with_accounts_and_an_expiry() -> None:
    result = CliRunner().invoke(
        app,
        ["token", "-s", "read", "-s", "mint", "--name", "ops", "-a", "a-*,b", "--expires", "90d"],
    )
    assert result.exit_code == 0, result.output
    token, line = result.stdout.splitlines()
    grant = TokenTable.parse(line).authorize(f"Bearer {token}", Scope.MINT)
    assert grant.name == "ops" and grant.accounts == ("a-*", "b")
    assert grant.scopes == {Scope.READ, Scope.MINT}
    assert grant.expires is not None
    days = (grant.expires - datetime.now(UTC)).total_seconds() / 86400
    assert 89.9 < days <= 90
    bad = CliRunner().invoke(app, ["token", "--expires", "soon"])
    assert bad.exit_code == 1 and "--expires takes a lifetime" in bad.stderr


def test_tokens_from_a_file_and_the_environment(tmp_path: object) -> None:
    from pathlib import Path

    a, line_a = mint_token(frozenset(Scope), "a")
    b, line_b = mint_token(frozenset({Scope.READ}), "b")
    path = Path(str(tmp_path)) / "tokens"
    path.write_text(line_a + "\n")
    table = load_tokens(str(path), environ={"EVENTLEDGER_API_TOKENS": f"{line_b};"})
    assert table.authorize(f"Bearer {a}", Scope.WRITE).name == "a"
    assert table.authorize(f"Bearer {b}", Scope.READ).name == "b"
    with pytest.raises(ValueError, match="no API tokens"):
        load_tokens(None, environ={})


def test_serve_http_refuses_to_start_without_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVENTLEDGER_API_TOKENS", "EVENTLEDGER_API_TOKENS_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["serve", "--http"])
    assert result.exit_code == 1 and "no API tokens" in result.stderr


@given(st.integers(-MAX_MINOR_UNITS, MAX_MINOR_UNITS))
def test_money_is_an_integer_as_a_number_or_a_string(amount: int) -> None:
    assert AmountBody.model_validate_json(f'{{"amount": {amount}}}').amount == amount
    assert AmountBody.model_validate_json(f'{{"amount": "{amount}"}}').amount == amount


@pytest.mark.parametrize(
    "raw", ["1.0", "2.5", "true", "null", '"1e3"', '" 5"', '"0x10"', str(MAX_MINOR_UNITS + 1),
            f'"{MAX_MINOR_UNITS + 1}"', "[1]", '{"a": 1}']
)  # fmt: skip
def test_anything_else_is_not_money(raw: str) -> None:
    with pytest.raises(ValueError):
        AmountBody.model_validate_json(f'{{"amount": {raw}}}')
