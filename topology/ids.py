"""The one rule for the ids a client names: aggregate ids and command ids (idempotency keys),
and the names of the principals that send commands.

Letters, digits and ``._:-``, starting with a letter or digit, at most 128 characters: no
white space, no control or bidirectional characters, no ``/`` (a route could not name it).
A principal's name follows the same rule without ``:`` and in at most 64 characters, so that
``scoped(principal, key)`` (``{principal}:{key}``, the command id of a key sent by a
principal) reads back without ambiguity: the first ``:`` ends the principal. The Python client
and the HTTP API check these before anything is sent; the flow itself accepts the longer ids
of its own internal commands (``topology.limits.MAX_ID_CHARS``).
"""

import re
from typing import Final

__all__ = [
    "ID_PATTERN",
    "ID_RULE",
    "MAX_CLIENT_ID_CHARS",
    "MAX_PRINCIPAL_CHARS",
    "PRINCIPAL_PATTERN",
    "PRINCIPAL_RULE",
    "SCOPED_ID_PATTERN",
    "InvalidIdError",
    "check_command_id",
    "check_id",
    "check_principal",
    "is_id",
    "scoped",
]

MAX_CLIENT_ID_CHARS: Final = 128
MAX_PRINCIPAL_CHARS: Final = 64
ID_PATTERN: Final = rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_CLIENT_ID_CHARS - 1}}}"
PRINCIPAL_PATTERN: Final = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_PRINCIPAL_CHARS - 1}}}"
SCOPED_ID_PATTERN: Final = rf"(?:{PRINCIPAL_PATTERN}:)?{ID_PATTERN}"
"""A command id as a client may name it back (a transfer id): a plain id, or one scoped by a
principal (at most 64 + 1 + 128 characters)."""
_ID: Final = re.compile(ID_PATTERN)
_PRINCIPAL: Final = re.compile(PRINCIPAL_PATTERN)
_SCOPED: Final = re.compile(SCOPED_ID_PATTERN)
ID_RULE: Final = (
    f"1 to {MAX_CLIENT_ID_CHARS} letters, digits or '._:-', starting with a letter or digit"
)
PRINCIPAL_RULE: Final = (
    f"1 to {MAX_PRINCIPAL_CHARS} letters, digits or '._-', starting with a letter or digit"
)


class InvalidIdError(ValueError):
    """An id outside the rule; the message names which id and the rule, not the value."""


def is_id(value: str) -> bool:
    """Whether ``value`` matches ``ID_PATTERN``."""
    return _ID.fullmatch(value) is not None


def check_id(value: str, what: str) -> str:
    """``value`` if it matches ``ID_PATTERN``, else InvalidIdError naming ``what`` it is."""
    if not is_id(value):
        raise InvalidIdError(f"{what} must be {ID_RULE}")
    return value


def check_command_id(value: str) -> str:
    """``value`` if it is a command id a client may send: a plain id, or one scoped by a
    principal (``SCOPED_ID_PATTERN``); else InvalidIdError."""
    if not _SCOPED.fullmatch(value):
        raise InvalidIdError(
            f"a command id must be {ID_RULE}, optionally after a principal's name and ':'"
        )
    return value


def check_principal(value: str) -> str:
    """``value`` if it is a principal's name (``PRINCIPAL_PATTERN``), else InvalidIdError."""
    if not _PRINCIPAL.fullmatch(value):
        raise InvalidIdError(f"a principal's name must be {PRINCIPAL_RULE}")
    return value


def scoped(principal: str, key: str) -> str:
    """The command id of idempotency key ``key`` sent by ``principal``: two principals never
    share one. Raises InvalidIdError for a name or key outside the rules."""
    return f"{check_principal(principal)}:{check_id(key, 'an idempotency key')}"
