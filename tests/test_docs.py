"""The README and docs/ hold together: every relative link (and its #anchor) resolves, the README
keeps its short shape and sections, and CITATION.cff agrees with the package it cites."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

import lamm

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
README_SECTIONS = [
    "Installation",
    "Quick start",
    "Fine-tune on your own data",
    "Pre-trained models",
    "Running on a cluster",
    "Results",
    "Citing",
    "License",
]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def documents(root: Path) -> list[Path]:
    return [root / "README.md", root / "CHANGELOG.md", *sorted((root / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text outside fenced code blocks and code spans, where a `[x](y)` is a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(root: Path) -> list[str]:
    broken = []
    for path in documents(root):
        for target in LINK.findall(prose(path.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = path.relative_to(root).as_posix()
            if not resolved.exists():
                broken.append(f"{where}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where}: {target} (no heading with that anchor)")
    return broken


def test_the_link_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Page A\n\n## Some `code` (here)\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md) [ok](docs/a.md#some-code-here) [web](https://example.org/x.md)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nowhere) `[not a link](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n"
    )
    (tmp_path / "CHANGELOG.md").write_text("[self](#changelog)\n# Changelog\n")
    assert broken_links(tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#nowhere (no heading with that anchor)",
    ]


def test_every_relative_link_of_the_readme_and_docs_resolves():
    assert (ROOT / "docs").is_dir()
    assert broken_links(ROOT) == []


def test_the_readme_is_short_and_has_its_sections():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, "reference material belongs in docs/"
    headings = re.findall(r"^## (.*)$", FENCE.sub("", text), re.M)
    missing = [section for section in README_SECTIONS if section not in headings]
    assert missing == []
    assert "make demo   #" in text and "make test   #" in text  # the two quick-start commands
    results = text[text.index("## Results") :]
    assert results.index("<!-- lamm-results:start -->") < results.index("<!-- lamm-results:end -->")


def test_the_citation_file_agrees_with_the_package():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    license_line = re.search(r'^license = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert citation["version"] == lamm.__version__
    assert license_line and citation["license"] == license_line.group(1)
    assert "2505.22208" in citation["preferred-citation"]["url"]
    assert "2505.22208" in (ROOT / "README.md").read_text()
    assert "MIT License" in (ROOT / "LICENSE").read_text()
