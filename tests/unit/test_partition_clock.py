"""The partition's clock: the one it is given, never behind a batch already committed."""

from actors.commit import Committed
from tests.unit.support import LEDGER_CODEC
from topology.store import SnapshotStore


def test_the_partition_reads_the_clock_it_is_given_and_never_runs_backwards() -> None:
    now = [1_000]
    committed = Committed(LEDGER_CODEC, 0, {}, SnapshotStore(LEDGER_CODEC), clock=lambda: now[0])
    assert committed.now_ms() == 1_000
    now[0] += 86_400_000  # stepped past a window at once
    assert committed.now_ms() == 86_401_000
    committed.clock_ms = 90_000_000  # a batch committed at a later time (before a restart)
    assert committed.now_ms() == 90_000_000
