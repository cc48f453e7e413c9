"""The documentation: every relative link resolves to a file of this repository (and to a heading of it, when it
names one), since a clone from GitHub or the Hub has nothing outside the repository; and the licence of the bundled
weights is stated the same way everywhere."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _documents():
    try:
        listed = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True)
        names = listed.stdout.split()
    except (OSError, subprocess.CalledProcessError):  # an exported tree without git
        names = [str(p.relative_to(REPO)) for p in REPO.rglob("*.md") if ".git" not in p.parts]
    # model_card.md is a Jinja template: its links are filled in by train_led.py.
    return sorted(REPO / name for name in names if name != "model_card.md")


def links(text: str):
    """``(line number, target)`` of every inline Markdown link and image outside code blocks and code spans."""
    inside_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside_fence = not inside_fence
            continue
        if inside_fence:
            continue
        for match in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            yield number, match.group(1)


def anchors(path: Path):
    """GitHub's heading anchors of a Markdown file: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    inside_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            inside_fence = not inside_fence
        elif not inside_fence and line.startswith("#"):
            title = re.sub(r"[`*]", "", line.lstrip("#").strip()).lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_link_parser_sees_links_and_skips_code():
    text = "[a](x.md) ![b](img.png#c) `[no](code.md)` [w](https://example.org)\n```\n[no](fenced.md)\n```\n[d](#e)"
    assert list(links(text)) == [(1, "x.md"), (1, "img.png#c"), (1, "https://example.org"), (5, "#e")]
    assert "licence" in anchors(REPO / "README.md") and "devices-and-precision" in anchors(REPO / "docs/pipeline.md")


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(document):
    broken = []
    for number, target in links(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            if not target.startswith(("https://", "http://", "mailto:")):
                broken.append(f"line {number}: {target} (only public web pages may be linked absolutely)")
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if not resolved.is_relative_to(REPO):
            broken.append(f"line {number}: {target} leaves the repository")
        elif not resolved.exists():
            broken.append(f"line {number}: {target} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"line {number}: {target} names no heading of {resolved.name}")
    assert broken == [], f"{document.relative_to(REPO)}: " + "; ".join(broken)


def test_the_licence_of_the_bundled_weights_is_stated_alike_everywhere():
    sys.path.insert(0, str(REPO))
    import train_led

    model = REPO / "src/diffusers_led/pretrained/led-default"
    terms = json.loads((model / "model_index.json").read_text())["license"]
    assert terms == train_led.WEIGHTS_TERMS == "non-commercial research use only"
    card = (model / "README.md").read_text()
    assert "license: other" in card and f"**{terms}**" in card and "Apache-2.0" in card
    assert "private" not in card  # the package ships it: "keep this repository private" would contradict that
    for document in ("README.md", "pyproject.toml", "docs/training-ckplus.md"):
        assert terms in " ".join((REPO / document).read_text().split()), document
    assert "Apache-2.0" in (REPO / "README.md").read_text() and "Apache-2.0" in (REPO / "pyproject.toml").read_text()
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")
