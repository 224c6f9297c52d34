"""Bearer tokens with scopes, of which only SHA-256 hashes are kept.

A token table is lines ``sha256:<hex> <scope>[,<scope>] [name]`` (``#`` starts a comment),
from a file (``EVENTLEDGER_API_TOKENS_FILE``) or the environment (``EVENTLEDGER_API_TOKENS``,
lines separated by newlines or ``;``). ``eventledger token`` mints a token and prints its
line: the token itself is shown once and stored nowhere. Scopes: ``read`` (GET routes) and
``write`` (POST routes), ``operate`` (an operator's settlement of a lost transfer leg); no
scope implies another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

__all__ = [
    "AuthError",
    "Grant",
    "Scope",
    "TokenTable",
    "hash_token",
    "load_tokens",
    "mint_token",
]

_PREFIX = "sha256:"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    OPERATE = "operate"  # settle a lost transfer leg by hand (recorded under the token's name)


class AuthError(Exception):
    """A refused request: ``status`` 401 (no valid token) or 403 (the token lacks the
    scope)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Grant:
    """What a token may do: its scopes, and a name for the logs."""

    scopes: frozenset[Scope]
    name: str


def hash_token(token: str) -> str:
    """The stored form of a token: ``sha256:`` and its hex digest."""
    return _PREFIX + hashlib.sha256(token.encode()).hexdigest()


def mint_token(scopes: frozenset[Scope], name: str) -> tuple[str, str]:
    """A new random token and its table line (the only form to store)."""
    token = "el_" + secrets.token_urlsafe(32)
    line = f"{hash_token(token)} {','.join(sorted(scopes))} {name}".rstrip()
    return token, line


@dataclass(frozen=True)
class TokenTable:
    """Token hashes and their grants; ``insecure`` grants every scope to anyone (the demo's
    ``--insecure-dev`` only)."""

    grants: dict[str, Grant] = field(default_factory=dict)
    insecure: bool = False

    @classmethod
    def parse(cls, text: str) -> TokenTable:
        """Raises ValueError naming the bad line."""
        grants: dict[str, Grant] = {}
        for number, raw in enumerate(text.replace(";", "\n").splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(maxsplit=2)
            if len(parts) < 2 or not parts[0].startswith(_PREFIX) or len(parts[0]) != 71:
                raise ValueError(f"token line {number}: expected 'sha256:<64 hex> <scopes> [name]'")
            try:
                scopes = frozenset(Scope(s) for s in parts[1].split(","))
                int(parts[0][len(_PREFIX) :], 16)
            except ValueError:
                raise ValueError(
                    f"token line {number}: scopes are read, write and/or operate, the hash is hex"
                ) from None
            grants[parts[0].lower()] = Grant(scopes, parts[2] if len(parts) > 2 else f"#{number}")
        return cls(grants)

    def authorize(self, authorization: str | None, scope: Scope) -> Grant:
        """The grant of the request's ``Authorization`` header for ``scope``; AuthError
        401 without a valid bearer token, 403 when its token lacks the scope."""
        if self.insecure:
            return Grant(frozenset(Scope), "insecure-dev")
        kind, _, token = (authorization or "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthError(401, "unauthenticated", "a bearer token is required")
        digest = hash_token(token.strip())
        grant = next((g for h, g in self.grants.items() if hmac.compare_digest(h, digest)), None)
        if grant is None:
            raise AuthError(401, "invalid_token", "the bearer token is not valid")
        if scope not in grant.scopes:
            raise AuthError(403, "insufficient_scope", f"the token lacks the {scope} scope")
        return grant


def load_tokens(file: str | None = None, environ: dict[str, str] | None = None) -> TokenTable:
    """The table from ``file`` (else ``EVENTLEDGER_API_TOKENS_FILE``), plus the lines of
    ``EVENTLEDGER_API_TOKENS``. Raises ValueError when there is none: nothing runs
    unauthenticated unless asked (``TokenTable(insecure=True)``)."""
    env = os.environ if environ is None else environ
    path = file or env.get("EVENTLEDGER_API_TOKENS_FILE")
    text = Path(path).expanduser().read_text() if path else ""
    table = TokenTable.parse(text + "\n" + env.get("EVENTLEDGER_API_TOKENS", ""))
    if not table.grants:
        raise ValueError(
            "no API tokens: give --tokens-file (or EVENTLEDGER_API_TOKENS_FILE, or "
            "EVENTLEDGER_API_TOKENS); `eventledger token` mints one"
        )
    return table
