"""The partition actor's pause contract without a broker (the worker is never started):
a resume names the generation it expects, and a switch needs the pause still requested."""

from __future__ import annotations

import pytest

from actors.partition import GenerationMismatchError, PartitionWorker
from ledger import LEDGER
from topology.settings import Settings

SETTINGS = Settings.resolve(app_id="u", bootstrap_servers="127.0.0.1:1", environ={})


def test_resume_refuses_another_generation_and_stays_paused() -> None:
    worker = PartitionWorker(SETTINGS, 0, LEDGER, generation=3, start=False)
    worker._gate.request(0, lambda: True)
    with pytest.raises(GenerationMismatchError, match="serves generation 3"):
        worker.resume(4)
    assert worker.stats().paused
    worker.resume(3)
    assert not worker.stats().paused


def test_a_switch_is_refused_once_the_pause_was_lifted() -> None:
    worker = PartitionWorker(SETTINGS, 0, LEDGER, generation=0, start=False)
    worker._gate._parked = True  # the loop had parked, then a resume raced in
    with pytest.raises(RuntimeError, match="only while paused"):
        worker.switch_generation(1, object())
