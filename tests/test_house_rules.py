"""The house rules a newcomer relies on, checked: no module over 400 lines, a README of at most 300 lines that links
every docs/ page, and no relative link in the docs that leads nowhere (a file or a heading that moved)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_README_LINES = 300
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    """``text`` with fenced code blocks blanked (line count kept) and inline code spans removed."""
    out, fenced = [], False
    for line in text.split("\n"):
        if re.match(r"\s*(```|~~~)", line):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def _anchors(page: Path) -> set[str]:
    """The #anchors GitHub gives ``page``'s headings: lower case, punctuation but - and _ dropped, spaces to -,
    repeats numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    for line in _prose(page.read_text()).split("\n"):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
            slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
            if seen[slug]:
                seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in [*REPO.glob("hourglass/**/*.py"), *REPO.glob("pipeline/**/*.py")]
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_the_readme_is_short_and_links_every_docs_page():
    readme = REPO / "README.md"
    assert len(readme.read_text().splitlines()) <= MAX_README_LINES
    linked = {(REPO / target.partition("#")[0]).resolve() for target in LINK.findall(_prose(readme.read_text()))}
    pages = sorted((REPO / "docs").rglob("*.md"))
    assert pages, "docs/ has no pages"
    assert [str(p.relative_to(REPO)) for p in pages if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", ["README.md", "NOTES.md", *sorted(str(p.relative_to(REPO))
                                                                    for p in REPO.glob("docs/**/*.md"))])
def test_relative_links_lead_to_a_file_and_heading(page):
    path = REPO / page
    broken = []
    for target in LINK.findall(_prose(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.is_file() or (anchor and (dest.suffix != ".md" or anchor not in _anchors(dest))):
            broken.append(target)
    assert broken == []
