"""docs/ matches the code: the generated CLI and results references, the links between docs, and
the code comments that cite docs/method.md (no comment cites a file outside the repository)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raymtl import docgen

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CODE_DIRS = ("raymtl", "tests", "benchmarks", "jobs")


def _code_files() -> list[Path]:
    return [p for d in CODE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]


@pytest.mark.parametrize("name", sorted(docgen.GENERATORS))
def test_generated_reference_matches_the_code(name):
    doc, generate = docgen.GENERATORS[name]
    block = docgen.generated_block((DOCS / doc).read_text(encoding="utf-8"), name)
    assert block is not None, f"docs/{doc} lost its '{name}' markers"
    assert block == generate(), f"docs/{doc} is out of date: run `python -m raymtl.docgen`"


def test_cli_reference_lists_every_verb():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    verbs = ["synth", "featurize", "train", "ensemble", "reduce", "demo", "results", "dashboard"]
    for verb in verbs + ["predict", "serve", "export"]:
        assert f"### `raymtl {verb}`" in text


def test_no_code_comment_cites_a_file_outside_the_repository():
    cited = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in _code_files()
        if p.name != "test_docs.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"DESIGN\.md|paper\.md|STYLE\.md", line)
    ]
    assert cited == []


def test_method_sections_cited_by_the_code_exist():
    headings = re.findall(r"^## (\d+)\. ", (DOCS / "method.md").read_text(encoding="utf-8"), re.M)
    cited = set()
    for p in _code_files():
        for match in re.finditer(r"docs/method\.md (§[\d§\-, ]+)", p.read_text(encoding="utf-8")):
            cited |= set(re.findall(r"\d+", match.group(1)))
    assert cited, "the code cites docs/method.md sections"
    assert cited <= set(headings), f"sections cited but missing: {sorted(cited - set(headings))}"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_docs_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160
