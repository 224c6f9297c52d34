"""The short fault suite (part of the default run): the bank workload for 15 s under
partition-actor kills and kill -9 of the broker (a fault every 6 s from the third second,
the two kinds in turn, on until each has come); both kinds must have been injected and
every anomaly count must be zero. The long form (all faults, five minutes) is ``eventledger
torture --seconds 300 --faults kill,stop,broker,coordinator,rebuild,node`` (see
docs/testing.md, "The fault suite")."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from eventledger.torture.faults import Fault, NemesisPlan
from eventledger.torture.run import TortureConfig, run_torture

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


@pytest.fixture
def own_ray() -> Iterator[None]:
    """The run starts a Ray of its own: leave none of the session's up, and tell the session
    fixtures that theirs is gone (``ray_local`` starts it again when a later test needs it)."""
    from tests.conftest import _RAY, end_ray

    end_ray()
    yield
    _RAY["kind"] = None


def test_kills_and_broker_restarts_leave_no_anomaly(own_ray: None) -> None:
    seconds = float(os.environ.get("EVENTLEDGER_TORTURE_SECONDS", "15"))
    config = TortureConfig(
        seconds=seconds,
        faults=(Fault.KILL, Fault.BROKER),
        accounts=30,
        clients=32,
        seed=8,
        plan=NemesisPlan(interval=6.0, warmup=3.0),
    )
    result = run_torture(config)
    summary = json.dumps(result.to_dict(), indent=1)
    print(summary)
    injected = {f.kind for f in result.faults if f.ok}
    assert injected == {Fault.KILL, Fault.BROKER}, summary
    assert result.check.answered > 0
    assert not result.notes, summary
    assert result.check.ok, f"anomalies: {dict(result.check.counts)}\n{summary}"
