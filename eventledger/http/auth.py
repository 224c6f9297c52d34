"""Bearer tokens with scopes and account grants, of which only SHA-256 hashes are kept.

A token table is lines (``#`` starts a comment) of the fields::

    sha256:<64 lowercase hex>  <scope>[,<scope>]  <name>  accounts=<pattern>[,<pattern>]
    [expires=<UTC time, such as 2027-01-31T00:00:00Z>]

from a file (``EVENTLEDGER_API_TOKENS_FILE``) or the environment (``EVENTLEDGER_API_TOKENS``,
lines separated by newlines or ``;``). ``eventledger token`` mints a token and prints its
line: the token itself is shown once and stored nowhere. The parser is strict: a malformed
field, a repeated hash or a repeated name is an error naming the line, never a silent override.

Scopes (none implies another): ``read`` (GET routes), ``write`` (commands that move money the
account already has), ``mint`` (deposits and overdraft limits: they create money or credit),
``operate`` (an operator's settlement of a lost transfer leg). A grant's account patterns
(``*`` matches any run of characters) bound every route to the accounts it names. The name is
the principal (``topology.ids.PRINCIPAL_RULE``: no ``:``, at most 64 characters): it travels
with every command the token sends, is recorded with the events, and scopes the token's
idempotency keys (the command id of key ``k`` is ``{name}:{k}``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path

from topology.ids import PRINCIPAL_PATTERN, PRINCIPAL_RULE

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
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(PRINCIPAL_PATTERN)
_ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9._:*-]{1,128}")


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    MINT = "mint"  # deposits and overdraft limits: they create money or credit
    OPERATE = "operate"  # settle a lost transfer leg by hand (recorded under the token's name)


class AuthError(Exception):
    """A refused request: ``status`` 401 (no valid token), 403 (the token lacks the scope,
    or is not granted the account) or 429 (its principal's rate is spent: ``retry_after``
    seconds)."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Grant:
    """What a token may do: its scopes, on the accounts its patterns match, until it expires.
    ``name`` is the principal recorded with every command it sends."""

    scopes: frozenset[Scope]
    name: str
    accounts: tuple[str, ...] = ("*",)
    expires: datetime | None = None

    def covers(self, account: str) -> bool:
        """Whether ``account`` matches one of the grant's patterns."""
        return any(fnmatchcase(account, pattern) for pattern in self.accounts)

    def require(self, account: str) -> None:
        """AuthError 403 ``forbidden_account`` unless the grant covers ``account``. The answer
        is the same whether the account exists or not."""
        if not self.covers(account):
            raise AuthError(403, "forbidden_account", "the token is not granted this account")

    def line(self, digest: str) -> str:
        """The table line of this grant for a token of hash ``digest``."""
        parts = [digest, ",".join(sorted(self.scopes)), self.name]
        parts.append("accounts=" + ",".join(self.accounts))
        if self.expires is not None:
            parts.append("expires=" + self.expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return " ".join(parts)


def hash_token(token: str) -> str:
    """The stored form of a token: ``sha256:`` and its hex digest."""
    return _PREFIX + hashlib.sha256(token.encode()).hexdigest()


def mint_token(
    scopes: frozenset[Scope],
    name: str,
    accounts: Iterable[str] = ("*",),
    expires: datetime | None = None,
) -> tuple[str, str]:
    """A new random token and its table line (the only form to store). Raises ValueError for
    a name or pattern the table could not read back."""
    grant = Grant(scopes, name, tuple(accounts), expires)
    _check_grant(grant)
    token = "el_" + secrets.token_urlsafe(32)
    return token, grant.line(hash_token(token))


def _check_grant(grant: Grant) -> None:
    if not grant.scopes:
        raise ValueError("a token needs at least one scope")
    if not _NAME.fullmatch(grant.name):
        raise ValueError(f"a token's name must be {PRINCIPAL_RULE}")
    if not grant.accounts or not all(_ACCOUNT_PATTERN.fullmatch(p) for p in grant.accounts):
        raise ValueError("account patterns are account ids in which * matches any run")
    if grant.expires is not None and grant.expires.tzinfo is None:
        raise ValueError("an expiry is a UTC time")


def _parse_line(line: str) -> tuple[str, Grant]:
    """One table line → (hash, grant); ValueError says what is wrong with it."""
    parts = line.split()
    if len(parts) < 4 or not _HASH.fullmatch(parts[0]):
        raise ValueError("expected 'sha256:<64 lowercase hex> <scopes> <name> accounts=...'")
    try:
        scopes = frozenset(Scope(s) for s in parts[1].split(","))
    except ValueError:
        raise ValueError(f"scopes are {', '.join(Scope)}") from None
    options: dict[str, str] = {}
    for option in parts[3:]:
        key, sep, value = option.partition("=")
        if not sep or key not in ("accounts", "expires") or key in options:
            raise ValueError(f"unexpected field {option!r} (accounts= once, expires= once)")
        options[key] = value
    if "accounts" not in options:
        raise ValueError("accounts= is required ('accounts=*' grants every account)")
    expires = None
    if "expires" in options:
        try:
            expires = datetime.strptime(options["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC
            )
        except ValueError:
            raise ValueError("expires= is a UTC time like 2027-01-31T00:00:00Z") from None
    grant = Grant(scopes, parts[2], tuple(options["accounts"].split(",")), expires)
    _check_grant(grant)
    return parts[0], grant


@dataclass(frozen=True)
class TokenTable:
    """Token hashes and their grants; ``insecure`` grants every scope on every account to
    anyone (the demo's ``--insecure-dev`` only). ``clock`` gives the time expiries are
    judged against (seconds since the epoch)."""

    grants: dict[str, Grant] = field(default_factory=dict)
    insecure: bool = False
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, clock: Callable[[], float] = time.time) -> TokenTable:
        """Raises ValueError naming the bad line."""
        grants: dict[str, Grant] = {}
        names: set[str] = set()
        for number, raw in enumerate(text.replace(";", "\n").splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                digest, grant = _parse_line(line)
                if digest in grants:
                    raise ValueError("the same token hash stands on an earlier line")
                if grant.name in names:
                    raise ValueError(f"the name {grant.name!r} stands on an earlier line")
            except ValueError as error:
                raise ValueError(f"token line {number}: {error}") from None
            grants[digest] = grant
            names.add(grant.name)
        return cls(grants, clock=clock)

    def authorize(self, authorization: str | None, scope: Scope) -> Grant:
        """The grant of the request's ``Authorization`` header for ``scope``; AuthError
        401 without a valid, unexpired bearer token, 403 when its token lacks the scope."""
        if self.insecure:
            return Grant(frozenset(Scope), "insecure-dev")
        kind, _, token = (authorization or "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthError(401, "unauthenticated", "a bearer token is required")
        digest = hash_token(token.strip())
        grant = next((g for h, g in self.grants.items() if hmac.compare_digest(h, digest)), None)
        if grant is None:
            raise AuthError(401, "invalid_token", "the bearer token is not valid")
        if grant.expires is not None and grant.expires.timestamp() <= self.clock():
            raise AuthError(401, "invalid_token", "the bearer token has expired")
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
