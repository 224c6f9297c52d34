"""The fault tests' traffic (``tests/integration/traffic.py``) on a real service: it keeps
flowing until it is stopped, whatever count it has reached, and a wait on traffic that has
ended fails at once with the reason instead of waiting out its timeout.

The regression: the traffic once stopped by itself after a fixed number of commands. A fault
that took long to handle while commands still flowed (a node joining, a rebuild's shadows
starting on a busy machine) used that number up, and the test's next ``wait_for`` then
waited 120 s for replies that no one would ever ask for, with every partition running."""

from __future__ import annotations

import pytest

from ledger import LEDGER
from tests.integration.conftest import Service
from tests.integration.traffic import Traffic, assert_exactly_once_and_money_conserved

PAST_THE_OLD_LIMIT = 650
"""More replies than the old traffic could ever get (12 accounts opened + 600 commands)."""


@pytest.mark.slow  # a check of the test harness itself (27 s): `pytest -m slow` runs it
def test_traffic_flows_until_stopped_and_a_wait_on_ended_traffic_says_so(
    service: Service,
) -> None:
    traffic = Traffic(service.client, "flow").start()
    traffic.wait_for(PAST_THE_OLD_LIMIT)
    traffic.stop()
    with pytest.raises(AssertionError, match="traffic thread ended after"):
        traffic.wait_for(1, timeout=60)
    assert_exactly_once_and_money_conserved(service.settings, [traffic], LEDGER)
