"""The one rule for the ids a client names: aggregate ids and command ids (idempotency keys).

Letters, digits and ``._:-``, starting with a letter or digit, at most 128 characters: no
white space, no control or bidirectional characters, no ``/`` (a route could not name it).
The Python client and the HTTP API check it before anything is sent; the flow itself accepts
the longer ids of its own internal commands (``topology.limits.MAX_ID_CHARS``).
"""

import re
from typing import Final

__all__ = ["ID_PATTERN", "ID_RULE", "MAX_CLIENT_ID_CHARS", "InvalidIdError", "check_id"]

MAX_CLIENT_ID_CHARS: Final = 128
ID_PATTERN: Final = rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_CLIENT_ID_CHARS - 1}}}"
_ID: Final = re.compile(ID_PATTERN)
ID_RULE: Final = (
    f"1 to {MAX_CLIENT_ID_CHARS} letters, digits or '._:-', starting with a letter or digit"
)


class InvalidIdError(ValueError):
    """An id outside the rule; the message names which id and the rule, not the value."""


def check_id(value: str, what: str) -> str:
    """``value`` if it matches ``ID_PATTERN``, else InvalidIdError naming ``what`` it is."""
    if not _ID.fullmatch(value):
        raise InvalidIdError(f"{what} must be {ID_RULE}")
    return value
