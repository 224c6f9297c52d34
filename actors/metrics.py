"""OpenTelemetry metrics of a partition actor: outcomes, batch sizes, commit latency, restore.

Instruments come from the global meter provider: no-ops until an SDK provider is installed
(``actors.tracing.configure_telemetry`` does so when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; tests install one with an in-memory reader).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from actors.messaging import SCHEMA_URL

__all__ = ["PartitionMetrics", "observe_lag"]


class PartitionMetrics:
    """The instruments one partition records into, tagged with its partition number."""

    def __init__(self, app_id: str, partition: int) -> None:
        meter = metrics.get_meter("eventledger", schema_url=SCHEMA_URL)
        self._attrs: dict[str, AttributeValue] = {
            "eventledger.app_id": app_id,
            "eventledger.partition": partition,
        }
        self._commands = meter.create_counter(
            "eventledger.commands", unit="{command}", description="Commands by outcome"
        )
        self._batch = meter.create_histogram(
            "eventledger.batch.size", unit="{command}", description="Commands per transaction"
        )
        self._commit = meter.create_histogram(
            "eventledger.commit.duration", unit="s", description="Transaction latency"
        )
        self._aborts = meter.create_counter(
            "eventledger.aborts", unit="{transaction}", description="Aborted transactions"
        )
        self._legs_refused = meter.create_counter(
            "eventledger.legs.refused",
            unit="{leg}",
            description="Transfer legs refused, set aside, dead-lettered or skipped as forgotten",
        )
        self._held = meter.create_counter(
            "eventledger.held",
            unit="{batch}",
            description="Batches stopped before an internal command of a newer schema version",
        )
        self._restored = meter.create_counter(
            "eventledger.restore.records", unit="{record}", description="Snapshots restored"
        )
        self._restore_time = meter.create_histogram(
            "eventledger.restore.duration", unit="s", description="Time to restore"
        )

    def batch(self, outcomes: Mapping[str, int], size: int, commit_seconds: float) -> None:
        """Record one committed batch: commands by outcome, its size, its commit latency."""
        for outcome, n in outcomes.items():
            self._commands.add(n, {**self._attrs, "eventledger.outcome": str(outcome)})
        self._batch.record(size, self._attrs)
        self._commit.record(commit_seconds, self._attrs)

    def leg_refused(self, outcome: str, code: str) -> None:
        self._legs_refused.add(
            1, {**self._attrs, "eventledger.outcome": outcome, "eventledger.code": code}
        )

    def held(self) -> None:
        self._held.add(1, self._attrs)

    def abort(self) -> None:
        self._aborts.add(1, self._attrs)

    def restore(self, records: int, seconds: float) -> None:
        self._restored.add(records, self._attrs)
        self._restore_time.record(seconds, self._attrs)


def observe_lag(app_id: str, topic: str, group: str, lags: Callable[[], Mapping[int, int]]) -> None:
    """An observable gauge ``eventledger.lag``: per partition, the commands of ``topic`` not
    yet committed, as ``lags()`` reports them when the reader collects (partitions it does
    not know are left out rather than reported as 0).

    ``lags`` is a bound method, held weakly: the meter provider is global and never lets go
    of a gauge's callback, which must not keep its owner (a coordinator and its Kafka
    clients) alive; once the owner is gone the gauge reports nothing."""
    reader = weakref.WeakMethod(lags)

    def observe(_: CallbackOptions) -> Iterable[Observation]:
        read = reader()
        if read is None:
            return
        for partition, lag in sorted(read().items()):
            yield Observation(
                lag,
                {
                    "eventledger.app_id": app_id,
                    "eventledger.partition": partition,
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "messaging.destination.partition.id": str(partition),
                    "messaging.consumer.group.name": group,
                },
            )

    metrics.get_meter("eventledger", schema_url=SCHEMA_URL).create_observable_gauge(
        "eventledger.lag",
        callbacks=[observe],
        unit="{command}",
        description="Commands in the partition not yet committed",
    )
