"""The one way an application is deployed and stopped (the CLI's ``serve`` and ``stop``, the
demo, the fault suite, the benchmarks and the tests all come here).

Deploying starts the application's coordinator, ``{app}-coordinator``: a detached actor on
this node that Ray restarts without limit (its constructor fences the previous coordinator's
control writes and re-reads the desired state). The coordinator starts and supervises the
partition actors (``actors.supervisor.start_partition``: hard node affinity, restarted in
place by Ray up to ``RAY_RESTARTS`` times, then replaced by the coordinator); the history
actors are deployed beside them. Nothing else creates a partition actor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.coordinator import Coordinator
from actors.history import start_history, stop_history
from actors.ray_state import current_node_id, lookup_actor
from topology.names import NAMESPACE, Names
from topology.protocol import AnyAggregate
from topology.settings import Settings

__all__ = ["deploy_coordinator", "find_coordinator", "run_as_service", "stop_service"]

T = TypeVar("T")


def find_coordinator(app_id: str) -> Any | None:
    """The application's coordinator actor, or None when it is not deployed."""
    return lookup_actor(Names(app_id).coordinator_actor, NAMESPACE)


def deploy_coordinator(
    settings: Settings,
    aggregate: AnyAggregate,
    *,
    tick_seconds: float = 0.5,
    wait: bool = True,
    timeout: float = 180.0,
) -> Any:
    """Start the application's coordinator (or find the running one) on this node, and
    optionally wait until every partition actor runs. Raises TimeoutError."""
    remote: Any = ray.remote(Coordinator)
    handle = remote.options(
        name=Names.of(settings).coordinator_actor,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(current_node_id(), soft=True),
    ).remote(settings, aggregate, tick_seconds=tick_seconds)
    # The history actors start beside the partition actors, once the coordinator (which
    # makes the topics they read) has been constructed.
    ray.get(handle.__ray_ready__.remote(), timeout=timeout)
    history = start_history(settings, aggregate)
    if wait and not ray.get(handle.wait_serving.remote(timeout), timeout=timeout + 30):
        errors = ray.get(handle.status.remote(), timeout=30).errors
        why = "".join(f"; {step}: {error}" for step, error in sorted(errors.items()))
        raise TimeoutError(
            f"{settings.app_id}: partitions not all running after {timeout:.0f}s{why}"
        )
    ray.get([h.ready.remote() for h in history], timeout=timeout)
    return handle


def stop_service(app_id: str, timeout: float = 120.0) -> bool:
    """Stop the application's coordinator and, through it, its actors. False: none ran."""
    stop_history(app_id)
    handle = find_coordinator(app_id)
    if handle is None:
        return False
    try:
        ray.get(handle.shutdown.remote(), timeout=timeout)
    finally:
        ray.kill(handle, no_restart=True)
    return True


def run_as_service(app_id: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(settings, **kwargs)`` in a Ray task, ``settings`` being the running service's own
    (its coordinator's): it acts with the service's Kafka principal, which the caller need
    not hold (an API replica holds only the API's). The settings go from the coordinator to
    the task as an object reference, never through this process. Raises what ``fn`` raised,
    and RuntimeError when the service is not deployed."""
    handle = find_coordinator(app_id)
    if handle is None:
        raise RuntimeError(f"{app_id} is not deployed")
    task: Any = ray.remote(num_cpus=0, max_retries=0)(fn)
    try:
        result: T = ray.get(task.remote(handle.service_settings.remote(), **kwargs))
    except RayTaskError as e:
        if isinstance(e.cause, Exception):
            raise e.cause from None
        raise
    return result
