"""Bearer tokens and scopes, problem statuses and money parsing of the HTTP API (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from eventledger.cli import app
from eventledger.http.app import AmountBody
from eventledger.http.auth import AuthError, Scope, TokenTable, hash_token, load_tokens, mint_token
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


@pytest.mark.parametrize(
    "text",
    ["sha256:abc read", "md5:" + "0" * 64 + " read", "sha256:" + "0" * 64 + " admin",
     "sha256:" + "g" * 64 + " read", "sha256:" + "0" * 64],
)  # fmt: skip
def test_bad_lines_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="token line 1"):
        TokenTable.parse(text)


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
