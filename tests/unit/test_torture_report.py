"""The fault suite's pure helpers: parsing ``--faults`` and attributing ops to faults."""

from __future__ import annotations

import pytest

from eventledger.torture.checker import Anomaly
from eventledger.torture.faults import Fault, FaultRecord, parse_faults
from eventledger.torture.history import History, Kind
from eventledger.torture.report import NO_FAULT, attribute


def test_parse_faults_keeps_order_and_drops_repeats() -> None:
    assert parse_faults("kill, broker,kill,") == [Fault.KILL, Fault.BROKER]
    with pytest.raises(ValueError, match="unknown fault 'reboot'"):
        parse_faults("kill,reboot")


def test_an_op_counts_for_every_fault_it_overlapped_or_for_no_fault() -> None:
    h = History()

    def op(start: float, end: float) -> int:
        o = h.begin(
            client=0,
            account="a",
            command_id=f"c{start}",
            kind=Kind.DEPOSIT,
            amount=1,
            started=start,
            budget=60,
        )
        o.attempts, o.ended = 1, end
        return o.op_id

    during_kill = op(10.5, 11.5)
    during_both = op(19.0, 30.0)
    quiet = op(40.0, 41.0)
    faults = [
        FaultRecord(Fault.KILL, 10.0, 12.0),
        FaultRecord(Fault.BROKER, 25.0, 28.0),
        FaultRecord(Fault.KILL, 20.0, 21.0),
        FaultRecord(Fault.KILL, 35.0, 36.0, ok=False),  # not injected: no window
    ]
    anomalies = {during_both: {Anomaly.DUPLICATE}, quiet: {Anomaly.CROSSED}}
    rows = attribute(h.ops(), faults, anomalies, [Fault.KILL, Fault.BROKER], grace=1.0)
    by = {r.label: r for r in rows}
    assert (by["kill"].injected, by["kill"].failed, by["kill"].commands) == (3, 1, 2)
    assert by["broker"].commands == 1 and by["broker"].anomalies[Anomaly.DUPLICATE] == 1
    assert by[NO_FAULT].commands == 1 and by[NO_FAULT].anomalies[Anomaly.CROSSED] == 1
    assert during_kill not in anomalies


def test_the_tables_render_with_each_anomaly_and_the_verdict() -> None:
    import io
    from collections import Counter

    from rich.console import Console

    from eventledger.torture.checker import check, fact
    from eventledger.torture.history import Answer
    from eventledger.torture.report import print_result
    from eventledger.torture.run import TortureConfig, TortureResult
    from ledger.events import AccountOpened, Deposited
    from topology.partitioner import partition_for

    h = History()
    o = h.begin(
        client=0, account="a", command_id="o", kind=Kind.OPEN, amount=0, started=0, budget=9
    )
    o.answers.append(Answer("o", "a", True, None, 1.0))
    d = h.begin(
        client=0, account="a", command_id="d", kind=Kind.DEPOSIT, amount=5, started=2, budget=9
    )
    d.attempts, d.ended = 2, 3.0
    d.answers.append(Answer("d", "b", True, None, 3.0))  # crossed
    partition = partition_for(b"a", TortureConfig().partitions)
    events = [fact("a", "o", AccountOpened("EUR", 0)), fact("a", "d", Deposited(5))] * 2
    result = TortureResult(
        config=TortureConfig(seconds=5, faults=(Fault.KILL,)),
        app_id="t",
        check=check(h.ops(), events, {"a": 10}),
        ops=h.ops(),
        faults=[
            FaultRecord(Fault.KILL, 2.5, 2.8, target="partition p", partitions=(partition,)),
            FaultRecord(Fault.COORDINATOR, 4.0, 4.5, target="coordinator"),
        ],
        errors=Counter({"ReplyTimeoutError": 1}),
        shared_ids=0,
        duration=5.0,
    )
    out = io.StringIO()
    print_result(Console(file=out, width=80), result)
    text = out.getvalue()
    assert "ANOMALIES" in text and "crossed" in text and "duplicate" in text
    assert not result.ok and result.to_dict()["check"]["anomalies"]["duplicate"] == 2
    # The deposit was waiting across the kill at 2.5: the gap runs from the opening's reply
    # (1.0) to the deposit's (3.0); the coordinator's kill hit no partition.
    assert "2.00 s" in text and "kill median 2.00 s, max 2.00 s (of 1)" in text
    assert [(f["gap"], f["gap_outcome"]) for f in result.to_dict()["faults"]] == [
        (2.0, "measured"),
        (None, "no partition"),
    ]


def test_a_run_with_repartitions_prints_their_progress_and_gaps_by_the_final_owner() -> None:
    import io
    from collections import Counter

    from rich.console import Console

    from eventledger.torture.checker import check
    from eventledger.torture.growth import MoveSummary
    from eventledger.torture.history import Answer
    from eventledger.torture.report import print_result
    from eventledger.torture.run import TortureConfig, TortureResult

    h = History()
    d = h.begin(
        client=0, account="a", command_id="d", kind=Kind.DEPOSIT, amount=0, started=0, budget=9
    )
    d.answers.append(Answer("d", "a", True, None, 1.0))
    late = h.begin(
        client=0, account="a", command_id="e", kind=Kind.DEPOSIT, amount=0, started=1.5, budget=9
    )
    late.answers.append(Answer("e", "a", True, None, 4.0))
    summary = MoveSummary(
        number=1,
        from_partitions=4,
        to_partitions=8,
        phase="done",
        moves=96,
        published=96,
        handed_off=96,
        handoff_max=None,
        handoff_p50=None,
        install_max=300.0,
        install_p50=120.0,
        seconds=46.9,
    )
    result = TortureResult(
        config=TortureConfig(seconds=5, faults=(Fault.REPARTITION,), partitions=4),
        app_id="t",
        check=check(h.ops(), [], None),
        ops=h.ops(),
        faults=[FaultRecord(Fault.REPARTITION, 2.0, 3.0, target="4 → 8", partitions=(6,))],
        errors=Counter(),
        shared_ids=0,
        duration=5.0,
        repartitions=[summary],
        owners={"a": 6},  # where the actors held it at the check
        forwarded=17,
    )
    out = io.StringIO()
    print_result(Console(file=out, width=160), result)
    text = out.getvalue()
    assert "4 → 8" in text and "96/96" in text and "120 / 300 ms" in text and "46.9 s" in text
    assert "records forwarded (since each worker started)" in text and "17" in text
    assert result.gaps()[0].seconds == 3.0  # partition 6 by the final owner: 1.0 → 4.0
    assert result.to_dict()["repartitions"][0]["install_max"] == 300.0
