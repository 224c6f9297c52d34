"""cluster.yaml passes Ray's own cluster-launcher validation, so a broken file fails CI."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from topology.resources import DEFAULT_RESOURCE

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLUSTER_YAML.read_text())
    return loaded


def test_ray_validates_the_file_as_written_and_as_ray_up_prepares_it(
    config: dict[str, Any],
) -> None:
    validate_config(copy.deepcopy(config))
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_every_node_installs_eventledger_and_the_head_serves_it(config: dict[str, Any]) -> None:
    assert config["file_mounts"]["~/eventledger"] == "."
    installs = [c for c in config["setup_commands"] if "pip install" in c]
    assert any('"$HOME/eventledger[service,cli]"' in c for c in installs)
    start = config["head_start_ray_commands"]
    assert "ray start --head" in " ".join(start)
    assert "eventledger serve --timeout 900 --http" in start[-1]
    assert "KAFKA_BOOTSTRAP_SERVERS" in start[-1] and "EVENTLEDGER_API_TOKENS" in start[-1]


def test_the_recipe_is_safe_by_default(config: dict[str, Any]) -> None:
    """Ray's token auth on every node, the dashboard (it submits jobs) on localhost only, the
    API on the head's private address with TLS, never on every interface in plaintext."""
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    ray_starts = [c for c in starts if "ray start" in c]
    assert len(ray_starts) == 2
    for command in [*ray_starts, config["head_start_ray_commands"][-1]]:
        assert "RAY_AUTH_MODE=token" in command and "RAY_AUTH_TOKEN_PATH=" in command
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    serve = config["head_start_ray_commands"][-1]
    assert '--host "$(hostname -I' in serve
    assert "--tls-cert " in serve and "--tls-key " in serve
    ignored = (CLUSTER_YAML.parent / ".gitignore").read_text().split()
    assert {"cluster.env", "ray_auth_token", "tls.crt", "tls.key"} <= set(ignored)


def test_the_image_runs_the_ray_and_python_we_pin(config: dict[str, Any]) -> None:
    image = config["docker"]["image"]
    assert f":{ray.__version__}-py311" in image


def test_a_misspelt_field_is_refused(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    broken["setup_comands"] = broken.pop("setup_commands")
    with pytest.raises(Exception, match="setup_comands"):
        validate_config(prepare_config(broken))


def test_partition_slots_are_on_worker_types_only_and_the_head_has_no_cpus(
    config: dict[str, Any],
) -> None:
    types = config["available_node_types"]
    head = config["head_node_type"]
    assert DEFAULT_RESOURCE not in types[head]["resources"]
    assert types[head]["resources"]["CPU"] == 0
    assert "--num-cpus=0" in " ".join(config["head_start_ray_commands"])
    workers = [t for name, t in types.items() if name != head]
    assert workers and all(t["resources"][DEFAULT_RESOURCE] >= 1 for t in workers)
