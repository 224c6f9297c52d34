"""The CLI's tables read the coordinator's typed status and rebuild progress."""

from rich.console import Console

from actors.messages import (
    RebuildProgress,
    RowState,
    ServiceStatus,
    ShadowPhase,
    ShadowProgress,
    StatusRow,
)
from eventledger.report import print_rebuilds, print_status
from topology.control import RebuildPhase, RebuildRecord


def _shadow() -> ShadowProgress:
    return ShadowProgress(
        partition=0,
        generation=1,
        phase=ShadowPhase.REPLAYING,
        position=50,
        end=200,
        resumed_from=0,
        replayed=50,
        seconds=0.5,
        aggregates=7,
        error=None,
        aggregate="account",
        finish_steps_ms={},
        state_schema_version=2,
    )


def test_status_shows_a_rebuilding_partitions_progress_and_errors() -> None:
    rebuild = RebuildProgress(
        record=RebuildRecord(0, 1, RebuildPhase.REPLAYING, 0.0), shadow=_shadow()
    )
    row = StatusRow(
        partition=0,
        node="ef32dffa0000",
        state=RowState.REBUILDING,
        generation=0,
        aggregates=7,
        committed_offset=120,
        lag=3,
        restarts=1,
        last_commit_age=1.5,
        error="2 aborts in a row",
        rebuild=rebuild,
    )
    status = ServiceStatus(
        app_id="demo",
        partitions=1,
        bootstrap_servers="127.0.0.1:9092",
        nodes=["ef32dffa0000"],
        ticks=4,
        observed_at=0.0,
        errors={"place": "boom"},
        rows=[row],
        rebuilds={0: rebuild},
    )
    console = Console(record=True, width=120)
    print_status(console, status)
    text = console.export_text()
    assert "rebuilding 25%" in text and "ef32dffa" in text
    assert "coordinator step place: boom" in text and "2 aborts in a row" in text


def test_rebuilds_table_reads_the_records() -> None:
    done = RebuildRecord(0, 1, RebuildPhase.DONE, 0.0, events=1_000, replay_seconds=0.5)
    failed = RebuildRecord(1, 1, RebuildPhase.FAILED, 0.0, error="the shadow died")
    console = Console(record=True, width=120)
    print_rebuilds(console, {0: RebuildProgress(record=done), 1: RebuildProgress(record=failed)})
    text = console.export_text()
    assert "1,000" in text and "2,000" in text  # events, events/s
    assert "failed (the shadow died)" in text


def test_status_names_the_writer_member_once_a_partition_was_taken_over() -> None:
    def row(p: int, writer: int, epoch: int) -> StatusRow:
        return StatusRow(
            partition=p, node="n", state=RowState.RUNNING, generation=0, aggregates=1,
            committed_offset=1, lag=0, restarts=0, last_commit_age=None, error=None,
            rebuild=None, standby_lags={1 - writer: 0}, writer=writer, epoch=epoch,
        )  # fmt: skip

    def shown(*rows: StatusRow) -> str:
        status = ServiceStatus(
            app_id="demo", partitions=len(rows), bootstrap_servers="b", nodes=["n"], ticks=1,
            observed_at=0.0, errors={}, rows=list(rows), rebuilds={},
        )  # fmt: skip
        console = Console(record=True, width=140)
        print_status(console, status)
        return console.export_text()

    assert "epoch" not in shown(row(0, 0, 0), row(1, 0, 0))
    text = shown(row(0, 0, 0), row(1, 1, 1))
    assert "epoch" in text and "1@1" in text and "0@0" in text


def test_status_shows_the_routing_version_and_each_partitions_slots_once_assigned() -> None:
    def row(p: int, slots: int | None) -> StatusRow:
        return StatusRow(
            partition=p, node="n", state=RowState.RUNNING, generation=0, aggregates=1,
            committed_offset=1, lag=0, restarts=0, last_commit_age=None, error=None,
            rebuild=None, slots=slots,
        )  # fmt: skip

    def shown(version: int | None, *rows: StatusRow) -> str:
        status = ServiceStatus(
            app_id="demo", partitions=len(rows), bootstrap_servers="b", nodes=["n"], ticks=1,
            observed_at=0.0, errors={}, rows=list(rows), rebuilds={},
            slots=0 if version is None else 480, routing_version=version,
        )  # fmt: skip
        console = Console(record=True, width=160)
        print_status(console, status)
        return console.export_text()

    plain = shown(None, row(0, None), row(1, None))
    assert "routing" not in plain and "slots" not in plain
    text = shown(3, row(0, 239), row(1, 240), row(2, 1))
    assert "routing v3 of 480 slots" in text and "slots" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert [r[-1] for r in rows] == ["239", "240", "1"]
