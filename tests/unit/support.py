"""Shared builders for the unit tests: command records, a fake id memory, a batch runner with
defaults, the ledger one state schema ahead, and the hypothesis strategies of commands."""

from collections.abc import Callable, Mapping, MutableMapping, Sequence

import msgspec
from hypothesis import strategies as st

from ledger import LEDGER, CloseAccount, Command, Deposit, OpenAccount, Withdraw
from topology.codec.aggregate import Codec
from topology.codec.commands import encode_command
from topology.codec.keys import encode_key
from topology.envelopes import Slot
from topology.idempotency import entries_in_slots
from topology.settings import DAY_MS
from topology.step.batch import process_batch
from topology.step.records import BatchResult, InRecord

__all__ = [
    "ACCOUNTS",
    "LEDGER_CODEC",
    "NOW",
    "SEQ",
    "SOURCE",
    "Memory",
    "NewerLedger",
    "commands",
    "commit",
    "record",
    "run",
]

LEDGER_CODEC = Codec(LEDGER)
"""The ledger's codec, made once for every test."""

ACCOUNTS = ("a", "b", "c")
"""Few accounts, so that random commands meet each other's accounts often."""

SOURCE = "unit.commands"
NOW = 1_700_000_000_000
SEQ = 7  # the commit sequence a batch of `run` commits at


class Memory(dict[bytes, bytes]):
    """A dict as the id memory (what `actors.idstore.IdStore` is on disk)."""

    def lookup(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def entries_in(
        self, slots: frozenset[int], slot_of: Callable[[bytes], int]
    ) -> list[tuple[bytes, bytes]]:
        return entries_in_slots(self.items(), slots, slot_of)


def commit(committed: MutableMapping[str, Slot], ids: Memory, result: BatchResult) -> None:
    """Install a batch as the actor does once its transaction commits."""
    committed.update(result.changed)
    ids.update(result.remembered)


def record(
    offset: int,
    aggregate_id: str,
    command: Command | msgspec.Struct,
    command_id: str,
    *,
    expected_version: int | None = None,
    reply_to: int | None = 0,
    first_attempt_ms: int | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    principal: str | None = None,
) -> InRecord:
    """A command record as a client would produce it (keyed by the aggregate id)."""
    value = encode_command(
        aggregate_id,
        command,
        command_id=command_id,
        expected_version=expected_version,
        reply_to=reply_to,
        first_attempt_ms=first_attempt_ms,
        principal=principal,
    )
    return InRecord(offset, encode_key(aggregate_id), value, headers)


def run(
    committed: Mapping[str, Slot],
    records: Sequence[InRecord],
    *,
    partition: int = 0,
    partitions: int = 1,
    events_offset: int = 0,
    ids: Memory | None = None,
    window_ms: int = DAY_MS,
    now_ms: int = NOW,
    reply_lanes: int = 1,
    seq: int = SEQ,
) -> BatchResult:
    """`process_batch` over the ledger with test defaults (one partition, one reply lane,
    an empty id memory unless one is given, commit sequence `SEQ`)."""
    return process_batch(
        LEDGER_CODEC,
        committed,
        records,
        partition=partition,
        partitions=partitions,
        source_topic=SOURCE,
        events_offset=events_offset,
        ids=Memory() if ids is None else ids,
        window_ms=window_ms,
        now_ms=now_ms,
        seq=seq,
        reply_lanes=reply_lanes,
    )


class NewerLedger:
    """The ledger with a state layout one version ahead (what a newer deployment writes)."""

    def __getattr__(self, name: str) -> object:
        if name == "state_schema_version":
            return LEDGER.state_schema_version + 1
        return getattr(LEDGER, name)


def commands(
    currencies: st.SearchStrategy[str],
    limits: st.SearchStrategy[int],
    amounts: st.SearchStrategy[int],
) -> st.SearchStrategy[Command]:
    """Random account commands: opens in ``currencies`` with overdraft ``limits``, deposits
    and withdrawals of ``amounts``, and closes."""
    return st.one_of(
        st.builds(OpenAccount, currencies, limits),
        st.builds(Deposit, amounts),
        st.builds(Withdraw, amounts),
        st.just(CloseAccount()),
    )
