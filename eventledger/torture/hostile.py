"""Hostile command records: what no client library would send, produced straight into the
commands topic (the `hostile` fault, and the hostile-input integration tests). None of them
may be executed (an event from one is a phantom), none may stall the partition (the valid
commands after them must be answered)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["HostileRecord", "hostile_records"]

_DEEP = b"\x91" * 20_000 + b"\x00"  # [[[...[0]...]]]: 20,000 levels in 20 KB


@dataclass(frozen=True)
class HostileRecord:
    """One record to produce, keyed by the account it attacks."""

    what: str
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]


def _envelope(account: str, lane: int, tag: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "command_id": f"hostile-{tag}",
        "aggregate_id": account,
        "type": "Deposit",
        "payload": msgspec.Raw(msgspec.msgpack.encode({"amount": 1})),
        "reply_to": lane,
    }
    return {**base, **fields}


def hostile_records(account: str, lane: int, tag: str = "0") -> list[HostileRecord]:
    """The hostile records against `account` (replies, where any, to reply lane `lane`);
    `tag` keeps their command ids apart between bursts."""
    enc = msgspec.msgpack.encode
    envelope = _envelope(account, lane, tag)
    fields = b"".join(enc(k) + enc(v) for k, v in envelope.items())
    deep_field = bytes([0x80 | (len(envelope) + 1)]) + fields + enc("junk") + _DEEP
    big_amount = msgspec.Raw(enc({"amount": 2**64 - 1}))

    def record(what: str, value: bytes | None, headers: Any = ()) -> HostileRecord:
        return HostileRecord(what, value, list(headers))

    def env(**fields: Any) -> bytes:
        return enc(_envelope(account, lane, tag, **fields))

    return [
        record("payload nested 20,000 deep", env(payload=msgspec.Raw(_DEEP))),
        record("unknown field nested 20,000 deep", deep_field),
        record("600 KB command id", env(command_id="x" * 600_000)),
        record("90 KB command id", env(command_id="y" * 90_000)),
        record("not msgpack", b"\xc1\xc1\xc1 not msgpack"),
        record("null value", None),
        record("just under 1 MB", b"\x00" * 1_000_000),
        record("amount 2^64-1", env(payload=big_amount)),
        record("reply_to -1", env(reply_to=-1)),
        record("reply_to 10^6", env(reply_to=10**6)),
        record("unknown type", env(type="Teleport")),
        record("key is another aggregate", env(aggregate_id=f"{account}-else")),
        record("900 KB of headers on garbage", b"junk", [("big", b"h" * 900_000)]),
    ]
