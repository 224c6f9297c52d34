"""Money in flight for operators, the pure parts: which dead letters are lost legs of which
transfer (records built by the real codec and set aside by the real step), the join with
the published views, and the CLI's durations."""

from __future__ import annotations

import msgspec
import pytest

from eventledger.cli.transfers import parse_duration_ms
from eventledger.transfers import DeadLetter, LostLeg, find_lost, join
from ledger import Deposit
from ledger.internal import (
    ConfirmCredit,
    CreditTransfer,
    ForcedLeg,
    RefundTransfer,
    leg_id,
)
from ledger.state import InFlight
from topology.codec.commands import encode_command
from topology.codes import PoisonCode
from topology.settings import DAY_MS
from topology.step.aside import set_aside
from topology.step.records import InRecord

from .support import LEDGER_CODEC, NOW, SOURCE


def leg_value(aggregate: str, leg: msgspec.Struct, command_id: str) -> bytes:
    return LEDGER_CODEC.commands.encode_internal(
        aggregate, leg, command_id=command_id, origin=None, first_attempt_ms=NOW
    )


def dead(
    partition: int, offset: int, value: bytes, lost: frozenset[bytes], *, internal: bool = True
) -> tuple[DeadLetter, frozenset[bytes]]:
    """`value` set aside by the real step on `partition`: its dead letter (at dlq `offset`)
    and the partition's lost set after it."""
    key = LEDGER_CODEC.commands.decode(value)[0].aggregate_id.encode()
    result = set_aside(
        LEDGER_CODEC,
        InRecord(offset, key, value, (), internal),
        "kept aborting",
        partition=partition,
        source_topic=SOURCE,
        events_offset=0,
        now_ms=NOW,
        seq=1,
        window_ms=DAY_MS,
        lost=lost,
    )
    (letter,) = result.dlq
    record = DeadLetter(partition, offset, letter.key, letter.value, letter.headers)
    return record, lost if result.lost is None else result.lost


def test_lost_legs_are_matched_to_their_transfer_by_source_or_aggregate() -> None:
    credit = CreditTransfer("t1", "a", 30, "EUR", seq=2)
    refund = RefundTransfer("t2", "b", 5, "currency_mismatch", seq=3)
    confirm = ConfirmCredit("t3", "b", seq=4)
    lost1: frozenset[bytes] = frozenset()
    d1, lost1 = dead(1, 0, leg_value("b", credit, leg_id("credit", "a", "t1", 2)), lost1)
    # a settlement set aside names the same leg: the leg is listed once, at its first letter
    forced = ForcedLeg(credit, True, "ops", "again")
    d2, lost1 = dead(1, 1, leg_value("b", forced, leg_id("credit", "a", "t1", 2)), lost1)
    lost0: frozenset[bytes] = frozenset()
    d3, lost0 = dead(0, 0, leg_value("a", refund, leg_id("refund", "a", "t2", 3)), lost0)
    d4, lost0 = dead(0, 1, leg_value("a", confirm, leg_id("confirm", "a", "t3", 4)), lost0)
    client, lost0 = dead(
        0, 2, encode_command("a", Deposit(5), command_id="c1"), lost0, internal=False
    )
    assert len(lost0) == 2 and len(lost1) == 1, "only legs are remembered as lost"

    found = find_lost(LEDGER_CODEC, [d1, d2, d3, d4, client], {0: lost0, 1: lost1})
    assert [f.leg for f in found] == [
        LostLeg("a", "t2", 0, 0, "RefundTransfer", "a", leg_id("refund", "a", "t2", 3)),
        LostLeg("a", "t3", 0, 1, "ConfirmCredit", "a", leg_id("confirm", "a", "t3", 4)),
        LostLeg("a", "t1", 1, 0, "CreditTransfer", "b", leg_id("credit", "a", "t1", 2)),
    ]
    assert found[2].value == d1.value and found[2].key in lost1

    settled = find_lost(LEDGER_CODEC, [d1, d3], {0: lost0, 1: frozenset()})
    assert [f.leg.transfer_id for f in settled] == ["t2"], "a settled leg is no longer lost"


def test_a_dead_letter_of_another_code_or_unreadable_is_not_a_lost_leg() -> None:
    value = leg_value("b", CreditTransfer("t1", "a", 30, "EUR"), leg_id("credit", "a", "t1", 0))
    letter, lost = dead(1, 0, value, frozenset())
    other = DeadLetter(
        1, 1, b"b", value, [("eventledger.error.code", PoisonCode.MALFORMED.encode())]
    )
    garbage = DeadLetter(1, 2, b"b", b"\xc1junk", letter.headers)
    assert find_lost(LEDGER_CODEC, [other, garbage], {1: lost}) == []
    assert len(find_lost(LEDGER_CODEC, [letter], {1: lost})) == 1


def test_join_lists_transfers_oldest_first_with_their_lost_legs_and_age() -> None:
    lost = LostLeg("a", "t1", 1, 0, "CreditTransfer", "b", "credit:0:1:a:t1")
    views = {
        "a": [InFlight("t1", "b", 30, NOW - 60_000), InFlight("t9", "c", 1, NOW - 1_000)],
        "c": [InFlight("t1", "b", 7, NOW - 120_000)],  # the same id from another source
    }
    rows = join(views, [lost], now_ms=NOW)
    assert [(r.source, r.transfer_id, r.age_ms) for r in rows] == [
        ("c", "t1", 120_000),
        ("a", "t1", 60_000),
        ("a", "t9", 1_000),
    ]
    assert rows[0].lost == () and rows[1].lost == (lost,) and rows[1].amount == 30
    old = join(views, [lost], now_ms=NOW, older_than_ms=60_000)
    assert [(r.source, r.transfer_id) for r in old] == [("c", "t1"), ("a", "t1")]


@pytest.mark.parametrize(
    ("text", "ms"),
    [("10m", 600_000), ("30s", 30_000), ("2h", 7_200_000), ("1d", 86_400_000), ("0", 0),
     ("1.5s", 1_500), ("250ms", 250), (" 45 ", 45_000), ("1h30m", 5_400_000)],
)  # fmt: skip
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "m", "10x", "-5m", "1 m 2", "1e3s"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="like 30s, 10m, 2h"):
        parse_duration_ms(text)
