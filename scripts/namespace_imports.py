# namespace-imports: skip-file
"""Move references to the top-level packages ``actors``, ``topology`` and ``ledger`` under the
``eventledger`` namespace (``eventledger.actors``, ...), across the repository.

    python scripts/namespace_imports.py [--check] [ROOT]

What it rewrites, in every file git tracks or would track (not ignored) with a text suffix:

- Python imports: ``import actors.x [as y]``, ``from actors.x import y``, ``from actors import
  x``; and, in a file that binds the bare name (``import actors.x``), the code's ``actors.x``.
- Dotted references to a real module of a package (``actors.kafka``, ``ledger.decide.decide``)
  in strings, docstrings, comments and text files: mock and monkeypatch targets, logger
  names, ``python -m`` and Ray entrypoints, README prose and code blocks.
- A package's bare name where it can only mean the module: ``getLogger("actors")``,
  ``import_module("ledger")``, ``python -m ledger``, and module-valued keys of TOML tool
  configs (mypy ``packages``/``modules``/``module``, isort ``known-first-party``, setuptools
  ``include``).

Folder paths (``actors/kafka.py``) stay: the folders stay at the top of the repository. A
word that only looks like a package (an app id ``"ledger"``, ``config["actors"]``, the metric
``eventledger.commands``) is left: a dotted reference is rewritten only when its next part
names a module (or an ``__all__`` entry) of that package, and never after a word character,
``.``, ``-`` or ``/``. The rewrite is deterministic and idempotent: a second run changes
nothing. Python files it changed then get ruff's import sorting and formatting (when ruff is
on PATH or beside this interpreter); lines left longer than ruff's limit are listed, to be
rewrapped by hand. ``--check`` changes nothing and exits 1 when a file would change. A file
whose first lines hold ``namespace-imports: skip-file`` is left whole (this one, its tests).
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NAMESPACE", "PACKAGES", "Rewriter", "main", "repository_files"]

NAMESPACE = "eventledger"
PACKAGES = ("actors", "topology", "ledger")

_SUFFIXES = frozenset({".py", ".pyi", ".md", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".sh"})
_NAMES = frozenset({"Makefile", ".ci/run"})
_SKIP = "namespace-imports: skip-file"
# Calls whose first argument names a module (or a logger named after one).
_MODULE_CALLS = frozenset({"getLogger", "import_module", "find_spec", "run_module"})
# TOML keys whose string values are module names (not paths).
_MODULE_KEYS = frozenset(
    {"packages", "modules", "module", "known-first-party", "known-local-folder", "include"}
)
_LOGICAL_STARTS = frozenset(
    {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
)
_PKG = "|".join(PACKAGES)
_IMPORT_LINE = re.compile(
    rf"^(?P<lead>\s*(?:>>> |\.\.\. )?)(?P<kw>from|import)\s+(?P<pkg>{_PKG})"
    r"(?=(?:\.\w+)*(?:\s+import\s|\s+as\s+\w+\s*$|\s*,|\s*$))"
)
_RUN_MODULE = re.compile(rf"(?<=-m )(?P<pkg>{_PKG})\b(?![.\w-])")
_TOML_KEY = re.compile(r"^\s*(?P<key>[\w\-\"'.]+)\s*=")
_TOML_TABLE = re.compile(r"^\s*\[\[?[\w\-\"'.]+\]\]?\s*$")
_TOML_STRING = re.compile(rf"(?P<q>[\"'])(?P<pkg>{_PKG})(?P<tail>(?:\.\*|\*|\.[\w.*]+)?)(?P=q)")


@dataclass(frozen=True)
class Rewriter:
    """The rewrite rules bound to the modules each package has (``modules[pkg]``: its
    submodules, subpackages and ``__all__`` names), found in ``root``."""

    modules: dict[str, frozenset[str]]

    @classmethod
    def at(cls, root: Path) -> Rewriter:
        return cls({pkg: _names_in(root / pkg) for pkg in PACKAGES})

    def dotted(self, text: str) -> str:
        """``pkg.part`` → ``eventledger.pkg.part`` where ``part`` is one of ``pkg``'s names."""

        def one(match: re.Match[str]) -> str:
            pkg, part = match["pkg"], match["part"]
            if part not in self.modules.get(pkg, frozenset()):
                return match[0]
            return f"{NAMESPACE}.{pkg}.{part}"

        text = re.sub(rf"(?<![\w.\-/])(?P<pkg>{_PKG})\.(?P<part>\w+)", one, text)
        return _RUN_MODULE.sub(lambda m: f"{NAMESPACE}.{m['pkg']}", text)

    def text(self, text: str, *, toml: bool = False) -> str:
        """A text file, line by line: import lines (code blocks, doctests), dotted
        references, ``-m pkg``, and in TOML the module-valued keys' strings."""
        key = ""
        lines = []
        for original in text.splitlines(keepends=True):
            line = _IMPORT_LINE.sub(
                lambda m: f"{m['lead']}{m['kw']} {NAMESPACE}.{m['pkg']}", original
            )
            line = self.dotted(line)
            if toml:
                if _TOML_TABLE.match(line):
                    key = ""
                elif found := _TOML_KEY.match(line):
                    key = found["key"].strip("\"'").rsplit(".", 1)[-1]
                if key in _MODULE_KEYS:
                    line = _TOML_STRING.sub(
                        lambda m: f"{m['q']}{NAMESPACE}.{m['pkg']}{m['tail']}{m['q']}", line
                    )
            lines.append(line)
        return "".join(lines)

    def python(self, source: str) -> str:
        """A Python file, token by token: imports, the code's uses of a bare package name it
        imported, dotted references in strings and comments, module-naming call arguments."""
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        edits: dict[tuple[int, int], tuple[tuple[int, int], str]] = {}
        bound = _bound_names(tokens)
        significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
        for i, tok in enumerate(significant):
            before = significant[i - 1] if i else None
            after = significant[i + 1] if i + 1 < len(significant) else None
            if tok.type == tokenize.NAME and tok.string in PACKAGES:
                if _is_import_target(significant, i) or (
                    tok.string in bound
                    and (before is None or before.string != ".")
                    and after is not None
                    and after.string == "."
                ):
                    edits[tok.start] = (tok.end, f"{NAMESPACE}.{tok.string}")
            elif tok.type == tokenize.STRING:
                new = self._string(tok.string, significant[max(0, i - 2) : i])
                if new != tok.string:
                    edits[tok.start] = (tok.end, new)
        for tok in tokens:
            if tok.type == tokenize.COMMENT and (new := self.dotted(tok.string)) != tok.string:
                edits[tok.start] = (tok.end, new)
        return _apply(source, edits)

    def _string(self, literal: str, before: Sequence[tokenize.TokenInfo]) -> str:
        quote, name = literal[-1], literal[1:-1]
        if (
            len(before) == 2
            and before[1].string == "("
            and before[0].string in _MODULE_CALLS
            and name in PACKAGES
            and literal[0] == quote
        ):
            return f"{quote}{NAMESPACE}.{name}{quote}"
        return self.dotted(literal)

    def file(self, path: Path) -> str:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".py", ".pyi"):
            return self.python(text)
        return self.text(text, toml=path.suffix == ".toml")


def _names_in(package: Path) -> frozenset[str]:
    if not package.is_dir():
        return frozenset()
    names = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in package.glob("*/__init__.py")}
    init = package / "__init__.py"
    if init.exists():
        for node in ast.parse(init.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(
                node.value, ast.List | ast.Tuple
            ):
                names |= {
                    e.value
                    for e in node.value.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                }
    return frozenset(names)


def _is_import_target(tokens: Sequence[tokenize.TokenInfo], i: int) -> bool:
    """Whether ``tokens[i]`` starts the module path of an import statement: after ``from``,
    or after ``import`` or a ``,`` of an ``import`` statement."""
    j = i - 1
    if j < 0 or tokens[j].string not in ("from", "import", ","):
        return False
    if tokens[j].string == "from":
        return _starts_statement(tokens, j)
    # Walk back over the statement: it must begin with ``import`` (not ``from ... import``).
    while j >= 0 and not _starts_statement(tokens, j):
        j -= 1
    return j >= 0 and tokens[j].string == "import"


def _starts_statement(tokens: Sequence[tokenize.TokenInfo], i: int) -> bool:
    return i == 0 or tokens[i - 1].type in _LOGICAL_STARTS or tokens[i - 1].string == ";"


def _bound_names(tokens: Sequence[tokenize.TokenInfo]) -> frozenset[str]:
    """Package names bound in the module by ``import pkg`` or ``import pkg.x`` (no ``as``)."""
    significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
    bound = set()
    for i, tok in enumerate(significant):
        if tok.string in PACKAGES and _is_import_target(significant, i):
            if significant[i - 1].string == "from":
                continue
            k = i
            while k + 2 < len(significant) and significant[k + 1].string == ".":
                k += 2
            if k + 1 >= len(significant) or significant[k + 1].string != "as":
                bound.add(tok.string)
    return frozenset(bound)


def _apply(source: str, edits: dict[tuple[int, int], tuple[tuple[int, int], str]]) -> str:
    if not edits:
        return source
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(pos: tuple[int, int]) -> int:
        return offsets[pos[0] - 1] + pos[1]

    out = source
    for start in sorted(edits, reverse=True):
        end, new = edits[start]
        out = out[: at(start)] + new + out[at(end) :]
    return out


def repository_files(root: Path) -> list[Path]:
    """The files git tracks or would track under ``root`` that the rewrite reads, sorted."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    files = []
    for name in sorted(set(filter(None, listed.split("\0")))):
        path = root / name
        wanted = path.suffix in _SUFFIXES or name in _NAMES or path.name in _NAMES
        if wanted and path.is_file() and not _skipped(path):
            files.append(path)
    return files


def _skipped(path: Path) -> bool:
    with path.open(encoding="utf-8") as lines:
        return any(_SKIP in line for line, _ in zip(lines, range(5), strict=False))


def _ruff(root: Path, files: Sequence[Path]) -> None:
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None or not files:
        if files:
            print("ruff not found: sort imports and format the changed files yourself")
        return
    names = [str(f.relative_to(root)) for f in files]
    subprocess.run([ruff, "check", "--select", "I", "--fix", "-q", *names], cwd=root, check=False)
    subprocess.run([ruff, "format", "-q", *names], cwd=root, check=False)
    long = subprocess.run(
        [ruff, "check", "--select", "E501", "--output-format", "concise", "-q", *names],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if long:
        print("lines now too long (rewrap by hand):\n" + long)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path.cwd())
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if needed")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    rewriter = Rewriter.at(root)
    changed = []
    for path in repository_files(root):
        old = path.read_text(encoding="utf-8")
        new = rewriter.file(path)
        if new != old:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in changed:
        print(("would rewrite " if args.check else "rewrote ") + str(path.relative_to(root)))
    if args.check:
        return 1 if changed else 0
    _ruff(root, [p for p in changed if p.suffix in (".py", ".pyi")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
