"""The README and docs/: every relative link and image exists, anchors included, and the gallery stays modest.

Links inside fenced code blocks are code, not links. Anchors are GitHub's heading slugs (lower case, punctuation
dropped, spaces to hyphens), checked in the file the link points to.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SOURCE = re.compile(r"<(?:img|a)\s[^>]*(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
GALLERY_LIMIT_BYTES = 400_000
GALLERY_LIMIT_WIDTH = 1000


def prose(path: Path) -> str:
    """The Markdown outside fenced code blocks and HTML comments."""
    text = re.sub(r"<!--.*?-->", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.DOTALL | re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose(path), flags=re.MULTILINE)}


def targets(path: Path) -> list[str]:
    text = prose(path)
    return [m.group(1) for m in LINK.finditer(text)] + [m.group(1) for m in HTML_SOURCE.finditer(text)]


def broken(path: Path) -> list[str]:
    """The relative links and images of ``path`` whose file, or whose anchor in a Markdown file, is missing."""
    problems = []
    for target in targets(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor.lower() not in anchors(linked):
            problems.append(f"{target}: no heading #{anchor} in {linked.name}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_images_exist(document: Path):
    assert broken(document) == []


def test_the_pattern_finds_the_readmes_links():
    found = targets(REPO / "README.md")
    assert "docs/USAGE.md" in found and "docs/gallery/nerf.png" in found and "docs/USAGE.md#headless" in found


def test_a_missing_file_or_anchor_is_reported(tmp_path: Path):
    (tmp_path / "other.md").write_text("# Real Heading: with `code`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n[ok](other.md#real-heading-with-code) [top](#top) [web](https://example.org/x)\n"
        "![gone](gone.png) [bad](other.md#nowhere)\n```sh\n[in code](not-checked.md)\n```\n"
    )
    assert broken(page) == ["gone.png: no such file", f"other.md#nowhere: no heading #nowhere in {(tmp_path / 'other.md').name}"]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_the_readme_opens_with_the_gallery_of_modest_pngs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\((docs/gallery/[^)]+)\)", readme)
    assert len(pictures) == 6, pictures
    assert readme.index(pictures[0]) < readme.index("## Quick start"), "the gallery comes before the quick start"
    for picture in pictures:
        path = REPO / picture
        width, height = png_size(path)
        assert width <= GALLERY_LIMIT_WIDTH and height < width, (picture, width, height)
        assert path.stat().st_size <= GALLERY_LIMIT_BYTES, (picture, path.stat().st_size)
