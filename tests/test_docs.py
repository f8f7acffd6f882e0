"""The README and docs/ stand alone: every link and every ``docs/design.md §N`` citation resolves in the repository."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("edgeflownas", "launcher", "tests", "benchmarks", "tools", "configs", "schemas", "scripts", "docs",
           "studies", "containers")


def _text_files():
    yield REPO / "README.md"
    for top in SOURCES:
        for path in (REPO / top).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".md", ".yaml", ".json", ".sh", ".sbatch", ".def", ".toml"}:
                yield path


def _design_sections():
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    return {int(number) for number in re.findall(r"^## (\d+)\. ", text, flags=re.MULTILINE)}


def test_every_design_citation_names_a_section_of_docs_design():
    sections = _design_sections()
    cited = {}
    for path in _text_files():
        for number in re.findall(r"design(?:\.md)? §(\d+)", path.read_text(encoding="utf-8", errors="replace")):
            cited.setdefault(int(number), []).append(path.relative_to(REPO).as_posix())
    assert cited, "no docstring cites docs/design.md"
    missing = {number: files for number, files in cited.items() if number not in sections}
    assert not missing, f"cited sections absent from docs/design.md: {missing}"


def test_readme_and_docs_links_point_at_files_that_exist():
    broken = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.name} -> {target}")
    assert not broken


def test_nothing_cites_documents_outside_the_repository():
    forbidden = re.compile(r"\.\./shared|post-mortem|spec T\d|user's T\d|\bdesign §")
    hits = [f"{path.relative_to(REPO)}: {match.group(0)}" for path in _text_files() if path != Path(__file__).resolve()
            for match in forbidden.finditer(path.read_text(encoding="utf-8", errors="replace"))]
    assert not hits


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 350
    text = "\n".join(lines)
    assert "bash scripts/setup.sh && .venv/bin/efnas demo" in text
    assert "bash scripts/setup.sh && .venv/bin/python -m pytest" in text
