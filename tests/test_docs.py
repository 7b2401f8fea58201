"""The docs agree with the tree: ARCHITECTURE.md names every package module and every
stage, no doc names an issue, and every relative link (and its #anchor) resolves.

Reads text files only: no network, nothing heavier than pyyaml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "speech_emotion"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
DOCS = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]

ISSUE_PATTERNS = (
    re.compile(r"\b[Ii]ssues? #?\d+"),
    re.compile(r"\bround (two|three)\b", re.IGNORECASE),
)
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m:
            if fenced is None:
                fenced = m.group(1)
            elif m.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase; drop characters other than letters, digits,
    spaces, hyphens and underscores; spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    """The link and image targets of a Markdown file that are not web addresses, outside
    code blocks and code spans."""
    targets = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:
                continue
            targets.append(target)
    return targets


def _names(text: str, name: str) -> bool:
    """Whether `text` names `name` on its own, not as the tail of a longer path or word."""
    return re.search(rf"(?<![\w/.]){re.escape(name)}(?![\w/])", text) is not None


def test_architecture_names_every_module():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    modules = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
    assert modules, "no modules found under src/speech_emotion"
    missing = [m for m in modules if not _names(text, m)]
    assert not missing, f"ARCHITECTURE.md does not name these modules: {missing}"


def test_architecture_names_every_stage():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])
    assert stages, "no stages in dvc.yaml"
    missing = [s for s in stages if re.search(rf"\b{re.escape(s)}\b", text) is None]
    assert not missing, f"ARCHITECTURE.md does not name these dvc.yaml stages: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_no_doc_names_an_issue(doc):
    hits = []
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        for pattern in ISSUE_PATTERNS:
            hits += [f"line {number}: {m.group(0)!r}" for m in pattern.finditer(line)]
    assert not hits, f"{_doc_id(doc)} names an issue (history belongs in git): {hits}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_relative_links_resolve(doc):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{_doc_id(doc)} has broken links: {broken}"


@pytest.mark.parametrize(("heading", "expected"), [
    ("Sharing results", "sharing-results"),
    ("The degradation table at the defaults", "the-degradation-table-at-the-defaults"),
    ("Measured on all 24 actors", "measured-on-all-24-actors"),
    ("`whisper_mlp`: the head (2024)", "whisper_mlp-the-head-2024"),
    ("Bad input, round two: params", "bad-input-round-two-params"),
])
def test_slug(heading, expected):
    assert slug(heading) == expected


def test_checks_catch_what_they_should(tmp_path):
    """The helpers find a broken anchor, skip code and web links, and count repeats."""
    (tmp_path / "a.md").write_text("# Top\n## Same\n## Same\n```\n# Not a heading\n```\n")
    (tmp_path / "b.md").write_text(
        "[ok](a.md#same-1) [bad](a.md#not-a-heading) [web](https://x.org/y#z)\n"
        "`[code](missing.md)`\n```\n[fenced](missing.md)\n```\n")
    assert anchors(tmp_path / "a.md") == {"top", "same", "same-1"}
    assert relative_links(tmp_path / "b.md") == ["a.md#same-1", "a.md#not-a-heading"]
    assert _names("see `models/cnn.py`", "models/cnn.py")
    assert not _names("see stages/features.py", "features.py")
    assert not _names("see models/__init__.py", "__init__.py")
