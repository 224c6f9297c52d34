"""Packaging: the built wheel installs the four source folders as the four top-level packages
of the same names, with every module of them and ranges that the CI constraints satisfy; the
client imports without the service's and the CLI's packages; the ``ray job submit`` environment
comes from the wheel."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.runtime_env import RuntimeEnv

from eventledger.job_env import runtime_env

ROOT = Path(__file__).resolve().parents[2]
# The source folders: each installs as the package of its own name.
FOLDERS = ("eventledger", "actors", "topology", "ledger")
CORE = {"confluent-kafka", "msgspec", "opentelemetry-api"}
SERVICE = {
    "ray",
    "fastapi",
    "httpx",
    "aiohttp",
    "lz4",
    "rocksdict",
    "psutil",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
}
CLI = {"typer", "rich"}
# What only the service or the CLI needs: the client must import without any of it.
NOT_FOR_THE_CLIENT = [
    "ray",
    "fastapi",
    "rich",
    "typer",
    "lz4",
    "rocksdict",
    "psutil",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel . --no-deps`` in a copy of the files git tracks or would track: a build in
    the work tree would leave build/ behind, whose stale modules a later wheel would pack."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src, dst = ROOT / name, source / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_file():
            shutil.copy2(src, dst)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("eventledger-*.whl")
    return built


def _metadata(wheel: Path) -> tuple[list[str], list[Requirement]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(archive.read(name).decode())
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    return list(metadata.get_all("Provides-Extra") or []), requires


def _names(requires: list[Requirement], extra: str | None) -> set[str]:
    """The distributions required with ``extra`` (None: the core), the project itself left out."""
    env = {"extra": extra or ""}
    return {
        canonicalize_name(r.name)
        for r in requires
        if r.name != "eventledger"
        and (r.marker.evaluate(env) if r.marker else extra is None)
        and (extra is None or r.marker is not None)
    }


def test_the_wheel_has_no_top_level_name_but_the_four_folders(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    name, version = wheel.name.split("-")[:2]
    assert top == {*FOLDERS, f"{name}-{version}.dist-info"}


def test_the_wheel_holds_every_module_of_the_source_folders(wheel: Path) -> None:
    installed = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    expected = set()
    for folder in FOLDERS:
        expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py")}
    assert expected - installed == set(), "a subpackage is missing from the wheel"
    assert installed - expected == set()
    assert {f"{folder}/py.typed" for folder in FOLDERS} <= set(zipfile.ZipFile(wheel).namelist())


def test_the_core_is_the_client_and_the_extras_the_rest(wheel: Path) -> None:
    extras, requires = _metadata(wheel)
    assert {"service", "cli", "dev"} <= set(extras)
    assert _names(requires, None) == CORE
    assert _names(requires, "service") == SERVICE
    assert _names(requires, "cli") == CLI
    dev = [r for r in requires if r.marker and r.marker.evaluate({"extra": "dev"})]
    assert any(r.name == "eventledger" and {"service", "cli"} <= r.extras for r in dev)


def test_requirements_are_ranges_that_the_constraints_satisfy(wheel: Path) -> None:
    _, requires = _metadata(wheel)
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    for requirement in requires:
        if requirement.name == "eventledger":
            continue
        assert not any(s.operator in ("==", "===") for s in requirement.specifier), requirement
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(pin, prereleases=True), (requirement, pin)


def test_the_client_imports_without_the_service_and_cli_packages(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        BLOCKED = {NOT_FOR_THE_CLIENT!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ModuleNotFoundError(f"blocked: {{name}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        try:
            import ray
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("the block does not hold")

        from actors.client import LedgerClient
        from actors.kafka import producer_config
        from ledger.commands import Deposit
        from topology.codec.commands import encode_command
        from topology.settings import Settings

        settings = Settings.resolve(app_id="a", bootstrap_servers="127.0.0.1:9", environ={{}})
        assert producer_config(settings)["bootstrap.servers"] == "127.0.0.1:9"
        assert encode_command("acc-1", Deposit(100), command_id="c-1")
        loaded = [m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED)]
        print("loaded:", loaded)
        """
    )
    # Outside the repository, so that the installed package is what gets imported.
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout


def test_the_job_environment_installs_the_wheel_and_its_extras(wheel: Path) -> None:
    env = runtime_env(wheel, env={"KAFKA_BOOTSTRAP_SERVERS": "b-1:9092"})
    assert env["py_modules"] == [str(wheel)]
    names = {canonicalize_name(Requirement(r).name) for r in env["pip"]}
    assert names == SERVICE | CLI
    assert env["env_vars"] == {"KAFKA_BOOTSTRAP_SERVERS": "b-1:9092"}
    RuntimeEnv(**env)  # Ray's own validation of every field


def test_the_job_environment_refuses_an_unknown_extra(wheel: Path) -> None:
    with pytest.raises(ValueError, match="no extra nope"):
        runtime_env(wheel, extras=["nope"])


def test_the_job_environment_command_prints_json(wheel: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventledger.job_env", str(wheel), "--env", "A=1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.search(r'"py_modules": \[".*eventledger-.*\.whl"\]', done.stdout)
    assert '"env_vars": {"A": "1"}' in done.stdout


def test_the_command_without_the_cli_extra_says_what_to_install(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("typer", "rich"):
                    raise ModuleNotFoundError(f"blocked: {name}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        from eventledger.console import main
        main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "eventledger: the command needs the cli and service extras (typer is not installed): "
        "pip install 'eventledger[service,cli]'"
    ]
