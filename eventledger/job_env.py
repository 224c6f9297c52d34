"""The runtime environment of ``ray job submit`` for a built wheel.

    python -m eventledger.job_env dist/eventledger-0.1.0-py3-none-any.whl \\
        [--extra service --extra cli] [--env NAME=VALUE ...]

prints the ``--runtime-env-json``: ``py_modules`` is the wheel (Ray uploads it and installs it,
with the core dependencies, on every node that runs the job or its actors) and ``pip`` the
requirements of the wheel's extras, read from the wheel's own metadata, so the recipe never
repeats a version by hand. The detached coordinator and partition actors keep the job's
environment after the job returns.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from collections.abc import Sequence
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

__all__ = ["extra_requirements", "main", "runtime_env"]

DEFAULT_EXTRAS = ("service", "cli")
_EXTRA = re.compile(r"""^(?P<requirement>[^;]+?)\s*;\s*extra\s*==\s*["'](?P<extra>[\w.-]+)["']$""")


def extra_requirements(wheel: Path, extras: Sequence[str]) -> list[str]:
    """The requirements the wheel's metadata gives for ``extras``, in its order (an extra
    that names the project itself, such as ``dev``'s, adds nothing of its own here)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(archive.read(name).decode())
    known = set(metadata.get_all("Provides-Extra") or [])
    if missing := sorted(set(extras) - known):
        raise ValueError(f"{wheel.name} has no extra {', '.join(missing)} (it has {sorted(known)})")
    project = metadata["Name"]
    found = []
    for line in metadata.get_all("Requires-Dist") or []:
        match = _EXTRA.match(line.strip())
        if match and match["extra"] in extras and not match["requirement"].startswith(project):
            found.append(match["requirement"].replace(" ", ""))
    return found


def runtime_env(
    wheel: Path, extras: Sequence[str] = DEFAULT_EXTRAS, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Ray's runtime environment that installs ``wheel`` and its ``extras`` on the cluster."""
    if wheel.suffix != ".whl" or not wheel.is_file():
        raise ValueError(f"not a wheel file: {wheel} (build it with `make wheel`)")
    result: dict[str, Any] = {
        "py_modules": [str(wheel)],
        "pip": extra_requirements(wheel, extras),
    }
    if env:
        result["env_vars"] = dict(env)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eventledger.job_env", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--extra", action="append", help="default: service and cli")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env takes NAME=VALUE, got {item!r}")
        env[name] = value
    try:
        result = runtime_env(args.wheel, args.extra or DEFAULT_EXTRAS, env)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
