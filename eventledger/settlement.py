"""Settling a lost transfer leg by hand: the one way an operator's settlement is built, for
the CLI, the Python client, the HTTP API and the simulator alike.

A leg is lost when its transactions kept aborting and it was set aside (dead-lettered and
remembered as `unprocessable`, never done). Its settlement is the leg itself wrapped in a
`ForcedLeg` (done as it was, or refused so its money goes back) under the leg's own id and
marked `redrive`: the partition does it only while its id memory holds the leg as set aside,
so it happens once and never beside the leg (see `topology.step`). It keeps the leg's
principal (whose money it is); the operator is named in its `TransferForced` event.
"""

from __future__ import annotations

from typing import get_args

from ledger.internal import ForcedLeg, Leg
from topology.codec.aggregate import Codec
from topology.codec.wire import CodecError

__all__ = ["forced_leg"]

_LEGS = get_args(Leg)


def forced_leg(codec: Codec, lost: bytes, *, refund: bool, operator: str, reason: str) -> bytes:
    """The internal command record value that settles the lost leg `lost` (its record value,
    as set aside): send it keyed by its aggregate to that aggregate's internal partition.
    Raises ValueError when `lost` is not a transfer leg."""
    if not operator.strip() or not reason.strip():
        raise ValueError("a settlement names its operator and its reason")
    try:
        envelope, leg = codec.commands.decode(lost)
    except CodecError as error:
        raise ValueError(f"not a transfer leg: {error}") from None
    if isinstance(leg, ForcedLeg):  # a settlement that was itself set aside
        leg = leg.leg
    if not isinstance(leg, _LEGS):
        raise ValueError(f"{type(leg).__name__} is not a transfer leg")
    return codec.commands.encode_internal(
        envelope.aggregate_id,
        ForcedLeg(leg, refund, operator, reason),
        command_id=envelope.command_id,
        origin=envelope.origin,
        first_attempt_ms=envelope.first_attempt_ms or 0,
        redrive=True,
        principal=envelope.principal,
    )
