# namespace-imports: skip-file
"""The namespace rewrite (scripts/namespace_imports.py): each rule, what it leaves alone, and
that a second run changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.namespace_imports import Rewriter, repository_files

REWRITER = Rewriter(
    {
        "actors": frozenset({"kafka", "client", "opening"}),
        "topology": frozenset({"settings", "protocol"}),
        "ledger": frozenset({"commands", "decide", "LEDGER"}),
    }
)

PYTHON = [
    ("from actors.kafka import retrying\n", "from eventledger.actors.kafka import retrying\n"),
    ("from ledger import LEDGER\n", "from eventledger.ledger import LEDGER\n"),
    ("import topology.settings as s\n", "import eventledger.topology.settings as s\n"),
    ("import os, ledger.decide\n", "import os, eventledger.ledger.decide\n"),
    (
        "def f():\n    import actors.opening\n\n    actors.opening.x = 1\n",
        "def f():\n    import eventledger.actors.opening\n\n    eventledger.actors.opening.x = 1\n",
    ),
    (
        'monkeypatch.setattr("actors.kafka.retrying", fake)\n',
        'monkeypatch.setattr("eventledger.actors.kafka.retrying", fake)\n',
    ),
    ('log = logging.getLogger("actors")\n', 'log = logging.getLogger("eventledger.actors")\n'),
    ("x = 1  # see actors.client\n", "x = 1  # see eventledger.actors.client\n"),
    ('"""See ``ledger.decide.decide``."""\n', '"""See ``eventledger.ledger.decide.decide``."""\n'),
    ('cmd = "python -m ledger"\n', 'cmd = "python -m eventledger.ledger"\n'),
]

UNCHANGED_PYTHON = [
    'config["actors"] = "4 actors"\n',  # a word, not the module
    'Names("ledger")\n',  # an app id
    "actors.append(1)\n",  # a local list: not imported as a module here
    'topic = "my-ledger.commands"\n',
    'metric = "eventledger.commands"\n',
    'path = "actors/kafka.py"\n',
    "from .kafka import retrying\n",
    "from eventledger.actors import client\n",
    "raise ValueError from ledger\n",
    'x = "ledger.unknown_thing"\n',  # not a module of the package
]

TEXT = [
    (
        "from actors.client import LedgerClient\n",
        "from eventledger.actors.client import LedgerClient\n",
    ),
    ("import ledger\n", "import eventledger.ledger\n"),
    ("`topology.settings.Settings`", "`eventledger.topology.settings.Settings`"),
    ("-- python -m actors.client serve\n", "-- python -m eventledger.actors.client serve\n"),
]

UNCHANGED_TEXT = [
    "from topology it follows that\n",  # prose, not an import
    "the folders `actors/` and `topology/` stay\n",
    "the {app}.commands topic, e.g. my-ledger.commands\n",
]

TOML = [
    (
        '[tool.mypy]\npackages = ["ledger", "eventledger", "bench"]\n',
        '[tool.mypy]\npackages = ["eventledger.ledger", "eventledger", "bench"]\n',
    ),
    (
        '[[tool.mypy.overrides]]\nmodule = [\n    "actors.*",\n    "ray.*",\n]\n',
        '[[tool.mypy.overrides]]\nmodule = [\n    "eventledger.actors.*",\n    "ray.*",\n]\n',
    ),
    (
        '[tool.ruff.lint.isort]\nknown-first-party = ["topology"]\n',
        '[tool.ruff.lint.isort]\nknown-first-party = ["eventledger.topology"]\n',
    ),
]

UNCHANGED_TOML = [
    '[tool.setuptools.package-dir]\n"eventledger.actors" = "actors"\n',  # a folder
    '[tool.mypy]\nfiles = ["actors"]\n',  # a path
    '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n[x]\nname = "ledger"\n',
]


@pytest.mark.parametrize(("before", "after"), PYTHON)
def test_python_references_move_under_the_namespace(before: str, after: str) -> None:
    assert REWRITER.python(before) == after
    assert REWRITER.python(after) == after


@pytest.mark.parametrize("source", UNCHANGED_PYTHON)
def test_python_words_that_are_not_the_packages_stay(source: str) -> None:
    assert REWRITER.python(source) == source


@pytest.mark.parametrize(("before", "after"), TEXT)
def test_text_references_move_under_the_namespace(before: str, after: str) -> None:
    assert REWRITER.text(before) == after
    assert REWRITER.text(after) == after


@pytest.mark.parametrize("text", UNCHANGED_TEXT)
def test_text_words_that_are_not_the_packages_stay(text: str) -> None:
    assert REWRITER.text(text) == text


@pytest.mark.parametrize(("before", "after"), TOML)
def test_toml_module_keys_move_under_the_namespace(before: str, after: str) -> None:
    assert REWRITER.text(before, toml=True) == after
    assert REWRITER.text(after, toml=True) == after


@pytest.mark.parametrize("text", UNCHANGED_TOML)
def test_toml_paths_and_other_keys_stay(text: str) -> None:
    assert REWRITER.text(text, toml=True) == text


def test_no_file_of_the_repository_is_left_to_rewrite() -> None:
    """Guards merges: a branch that still imports ``actors`` or ``ledger`` fails here."""
    root = Path(__file__).resolve().parents[2]
    rewriter = Rewriter.at(root)
    stale = [
        str(path.relative_to(root))
        for path in repository_files(root)
        if rewriter.file(path) != path.read_text(encoding="utf-8")
    ]
    assert stale == [], "run: .venv/bin/python scripts/namespace_imports.py"
