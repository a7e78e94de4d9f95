"""The READMEs: the top one stays short, every relative link and image resolves, each part's README is linked."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_README_MAX_BYTES = 20_000
PART_READMES = ("firmware/README.md", "host/README.md", "pipeline/README.md", "export/README.md")
# Not part of the project's documentation when the tree is not a git checkout.
SKIP_DIRS = {"runs", "build", "node_modules"}

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[^\S\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`)(?:[^\n]|\n(?![ \t]*\n))+?(?<!`)\1(?!`)")
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
_HTML = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    """Every git-tracked *.md file (every *.md outside hidden and build directories without git)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--", "*.md"], capture_output=True, check=True).stdout
        paths = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [
            p for p in ROOT.rglob("*.md")
            if not any(part.startswith(".") or part in SKIP_DIRS for part in p.relative_to(ROOT).parts[:-1])
            and not p.relative_to(ROOT).as_posix().startswith(("data/raw/", "data/processed/"))
        ]  # fmt: skip
    return sorted(p for p in paths if p.is_file())


def link_targets(text: str) -> list[str]:
    """Targets of inline links and images, reference definitions and HTML a/img tags, outside code."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", text))
    found = [m.group(1) for m in _INLINE.finditer(text)]
    found += [m.group(1) for m in _REFERENCE.finditer(text)]
    found += [m.group(1) for m in _HTML.finditer(text)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in found]


def local_path(md: Path, target: str) -> Path | None:
    """The file or directory a relative link points at (fragment and query stripped); None for URLs and #anchors."""
    if not target or target.startswith("#") or _SCHEME.match(target) or target.startswith("//"):
        return None
    path = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
    if not path:
        return None
    return (ROOT / path.lstrip("/")) if path.startswith("/") else (md.parent / path)


def broken_links(md: Path) -> list[str]:
    bad = []
    for target in link_targets(md.read_text(encoding="utf-8")):
        path = local_path(md, target)
        if path is None:
            continue
        resolved = path.resolve()
        if not resolved.exists() or not resolved.is_relative_to(ROOT):
            bad.append(f"{md.relative_to(ROOT)}: {target}")
    return bad


def test_top_readme_fits_its_budget():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= TOP_README_MAX_BYTES, f"README.md is {size:,} bytes, at most {TOP_README_MAX_BYTES:,}: move details to a part's README"


def test_the_link_finder_sees_links_and_skips_the_rest(tmp_path):
    text = (
        "See [a](docs/a.md#part) and ![plot](img/p.png \"title\"), [web](https://example.org/x.md),\n"
        "[here](#anchor), <img src=\"img/q.svg\">, `[not](code.md)` and [b](<with space.md>).\n"
        "[ref]: ref/target.md\n"
        "```\n[fenced](fenced.md)\n```\n"
    )
    targets = link_targets(text)
    assert targets == ["docs/a.md#part", "img/p.png", "https://example.org/x.md", "#anchor", "with space.md", "ref/target.md", "img/q.svg"]
    md = tmp_path / "README.md"
    assert local_path(md, "docs/a.md#part") == tmp_path / "docs/a.md"
    assert local_path(md, "https://example.org/x.md") is None and local_path(md, "#anchor") is None
    assert local_path(md, "with%20space.md") == tmp_path / "with space.md"


def test_markdown_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert "README.md" in names


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_images_resolve(md: Path):
    bad = broken_links(md)
    assert not bad, "links to nothing:\n" + "\n".join(bad)


@pytest.mark.parametrize("part", PART_READMES)
def test_each_part_readme_exists_and_is_linked_from_the_top(part: str):
    assert (ROOT / part).is_file(), f"{part} is missing"
    top = ROOT / "README.md"
    linked = {p.resolve() for t in link_targets(top.read_text(encoding="utf-8")) if (p := local_path(top, t)) is not None}
    assert (ROOT / part).resolve() in linked, f"README.md does not link to {part}"
