"""The idempotency window's rules, pure: when a command id is a retry, a reuse or too old.

A command id is remembered per aggregate (`encode_id_key`) as an `IdEntry`: its first reply
(or that its saga is in flight), the time of its first attempt and its fingerprint.
Invariant (the guarantee): a command whose first attempt is within `window_ms` of the
partition's clock is answered from memory if its id was seen, and executed at most once; one
whose first attempt is older is refused as `expired` whether or not it was seen, so it is
never executed a second time. A memory therefore only has to hold ids whose first attempt is
within the window: older ones may be dropped at any time. The partition's clock never runs
backwards (it is checkpointed), so neither does expiry.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Final, Protocol

from topology.codec.keys import encode_key, id_key_aggregate
from topology.codec.replies import decode_entry
from topology.codec.wire import CodecError

__all__ = [
    "MAX_CLOCK_SKEW_MS",
    "IdMemory",
    "IdVerdict",
    "entries_in_slots",
    "judge",
    "latest_entries",
    "replies_retention_ms",
]

MAX_CLOCK_SKEW_MS: Final = 5 * 60 * 1000
"""How far ahead of the partition's clock a first-attempt time may be (client clocks drift);
a command further ahead is refused, so that no id is remembered past its window + this."""

_RETENTION_MARGIN_MS: Final = 60 * 60 * 1000


class IdVerdict(StrEnum):
    """What to do with a command, given what the memory holds for its id."""

    EXECUTE = "execute"
    REPEAT = "repeat"  # send the remembered reply again
    EXPIRED = "expired"
    REUSED = "reused"
    IN_FUTURE = "in_future"


def judge(
    *,
    now_ms: int,
    window_ms: int,
    first_attempt_ms: int,
    fingerprint: int,
    seen_first_attempt_ms: int | None,
    seen_fingerprint: int | None,
) -> IdVerdict:
    """The verdict for a command whose first attempt was at `first_attempt_ms` (as it says),
    against the remembered first attempt and fingerprint of its id (None: not remembered).
    The remembered first attempt wins over the one a retry carries."""
    if seen_first_attempt_ms is None:
        if first_attempt_ms > now_ms + MAX_CLOCK_SKEW_MS:
            return IdVerdict.IN_FUTURE
        if first_attempt_ms + window_ms < now_ms:
            return IdVerdict.EXPIRED
        return IdVerdict.EXECUTE
    if seen_first_attempt_ms + window_ms < now_ms:
        return IdVerdict.EXPIRED
    if seen_fingerprint != fingerprint:
        return IdVerdict.REUSED
    return IdVerdict.REPEAT


def latest_entries(held: Mapping[bytes, bytes], read: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The entries of `read` (one changelog partition's, in order) to install over `held`
    (a restore's memory so far, from other partitions). An id decided again after its
    window may have entries on two replies partitions (two reply lanes); whatever order
    they are read in, the entry of the later decision (the later first attempt) wins."""
    newer: dict[bytes, bytes] = {}
    for key, value in read.items():
        old = held.get(key)
        if old is None or (
            decode_entry(value).first_attempt_ms >= decode_entry(old).first_attempt_ms
        ):
            newer[key] = value
    return newer


def replies_retention_ms(window_ms: int) -> int:
    """How long the replies topic (the memory's changelog) keeps a reply: past the window of
    any id it can hold, clock skew and a margin included."""
    return window_ms + MAX_CLOCK_SKEW_MS + _RETENTION_MARGIN_MS


def entries_in_slots(
    entries: Iterable[tuple[bytes, bytes]],
    slots: frozenset[int],
    slot_of: Callable[[bytes], int],
) -> list[tuple[bytes, bytes]]:
    """The (id key, entry) pairs of `entries` whose aggregate's key (`encode_key`) has its
    slot in `slots`, sorted; keys that are not id keys are skipped. A full scan: for the
    memories held in a dict (the simulator's, the tests')."""
    found = []
    for key, value in entries:
        try:
            aggregate_id = id_key_aggregate(key)
        except CodecError:
            continue
        if slot_of(encode_key(aggregate_id)) in slots:
            found.append((key, value))
    return sorted(found)


class IdMemory(Protocol):
    """What the batch step asks of an idempotency memory: the encoded `IdEntry` of each id
    key (None: not remembered), and every entry of some slots (a handoff moves them).
    A memory may forget an id once it is past its window."""

    def lookup(self, keys: Sequence[bytes]) -> Sequence[bytes | None]: ...

    def entries_in(
        self, slots: frozenset[int], slot_of: Callable[[bytes], int]
    ) -> Sequence[tuple[bytes, bytes]]:
        """The (id key, encoded entry) of every id remembered for an aggregate whose key's
        slot (`slot_of`, fixed for the application) is in `slots`, client commands' and
        internal commands' alike, whether or not the aggregate exists: a command refused
        for want of its account is remembered too, and must move with its slot."""
        ...
