"""The docs hold together: the README stays a front door (at most 300 lines), and every
relative Markdown link in the README, ``docs/`` and ``bench/results/`` resolves to a file of
the repository, and an ``#anchor`` to a heading of the Markdown file it names (GitHub's
slugs). Pure: it reads files only."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 300
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bench" / "results").glob("*.md")]
)

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) or ![alt](target), the text holding at most one level of brackets; the
# target may be <bracketed> and followed by a "title".
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_INLINE_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _prose(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks, with code spans removed."""
    lines, fence = [], ""
    for line in text.splitlines():
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append(_CODE_SPAN.sub("", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (link targets and backticks dropped),
    lowercase, punctuation dropped but for '-' and '_', each space a '-'."""
    text = _INLINE_LINK.sub(r"\1", heading).replace("`", "").lower()
    kept = "".join(c for c in text if c.isalnum() or c in "-_ ")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated one gets -1, -2, ..."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(page.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The link targets of a Markdown file (inline links, images and reference definitions),
    outside code."""
    targets = []
    for line in _prose(page.read_text(encoding="utf-8")):
        targets += _LINK.findall(line)
        reference = _REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
    return targets


def broken(page: Path) -> list[str]:
    """The relative links of ``page`` that do not resolve, each with why."""
    problems = []
    for target in links(page):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue  # empty, or absolute (https:, mailto:, ...): not checked here
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part)
        if not path_part:
            resolved = page
        elif path_part.startswith("/"):
            resolved = ROOT / path_part.lstrip("/")
        else:
            resolved = page.parent / path_part
        if not resolved.exists():
            problems.append(f"{target}: no such file")
        elif (
            fragment
            and resolved.is_file()
            and resolved.suffix == ".md"
            and unquote(fragment) not in anchors(resolved)
        ):
            problems.append(f"{target}: no heading with that anchor")
    return problems


def test_the_readme_is_a_front_door_of_at_most_300_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_links_into_docs() -> None:
    assert any(t.startswith("docs/") for t in links(ROOT / "README.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken(page) == []


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The guarantees, with their bounds", "the-guarantees-with-their-bounds"),
        ("Transfers: the saga", "transfers-the-saga"),
        ("`make test` and the slow group", "make-test-and-the-slow-group"),
        ("Rebuild: replay without downtime", "rebuild-replay-without-downtime"),
        ("What it injects, from the seed", "what-it-injects-from-the-seed"),
        ("snake_case and hyphen-ated", "snake_case-and-hyphen-ated"),
        ("A [link](x.md) inside", "a-link-inside"),
    ],
)
def test_anchors_follow_github_slugs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Its part\n\n## Its part\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#its-part) [ok too](other.md#its-part-1) [self](#page)\n"
        "[gone](missing.md) [no anchor](other.md#nothing) [web](https://example.com)\n"
        "`[in code](missing.md)`\n\n```\n[in a block](missing.md)\n```\n"
    )
    assert broken(page) == [
        "missing.md: no such file",
        "other.md#nothing: no heading with that anchor",
    ]
