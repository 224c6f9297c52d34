"""The codes the generic flow itself gives a command (beside the aggregate's own refusals and
the idempotency memory's, `topology.idempotency.IdCode`)."""

from enum import StrEnum
from typing import Final

__all__ = [
    "FORGED_INTERNAL_COMMAND",
    "FORGOTTEN_LEG",
    "IN_FLIGHT",
    "NOT_SET_ASIDE",
    "VERSION_CONFLICT",
    "PoisonCode",
]

VERSION_CONFLICT: Final = "version_conflict"
"""The refusal of a command whose expected version is not its aggregate's version (optimistic
concurrency: checked by the flow, against the slot's version, before the domain decides)."""

IN_FLIGHT: Final = "in_flight"
"""The outcome code of a retry of an id whose answer is deferred while its saga is in flight
(its id memory entry is `Deferred`): the saga's internal commands are sent again instead;
counted, never an answer."""

FORGOTTEN_LEG: Final = "forgotten_leg"
"""The outcome code of a leg sent again on a retry that the id memory no longer holds: it
was done long ago (its original precedes it on the same internal partition), so it is
skipped; counted, never an answer."""

NOT_SET_ASIDE: Final = "not_set_aside"
"""The outcome code of an operator's forced leg whose leg the id memory does not hold as set
aside (it was done, or is too old to tell): nothing is forced."""

FORGED_INTERNAL_COMMAND: Final = "forged_internal_command"
"""The refusal of an internal command type (or an envelope with an origin) on the public
commands topic: only the service sends internal commands, on the internal topic."""


class PoisonCode(StrEnum):
    """Why a command record is dead-lettered: the first four are decoding failures (the
    codec's ``DecodeFailure``, same values), the rest are routing failures found by the
    batch step."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNKNOWN_COMMAND_TYPE = "unknown_command_type"
    INVALID_PAYLOAD = "invalid_payload"
    KEY_MISMATCH = "key_mismatch"
    WRONG_PARTITION = "wrong_partition"
    INVALID_REPLY_TO = "invalid_reply_to"
    UNPROCESSABLE = "unprocessable"  # set aside after its transactions kept aborting
    NOT_INTERNAL = "not_internal"  # a client command type on the internal topic
