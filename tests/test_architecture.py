"""The house rules of docs/architecture.md, checked against the code: imports run down the floors
only, no import circles, small modules, and documents cited from the code exist in the repository."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jeoparda"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_LINES = 350


def floors() -> dict[str, int]:
    """Room -> floor, from the table under "## Rooms and floors" (``| floor | rooms | ... |``)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text[text.index("## Rooms and floors"):]
    table = table[:table.index("\n## ", 1)]
    out: dict[str, int] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for room in re.findall(r"`([\w.]+)/?`", cells[1]):
                out[room.removesuffix(".py")] = int(cells[0])
    return out


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    """``jeoparda.loaders.base`` -> ``loaders``; ``jeoparda.config`` -> ``config``; the package face -> ``jeoparda``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "jeoparda"


def imports(path: Path) -> set[str]:
    """Every jeoparda module this file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "jeoparda":
                found.update(f"jeoparda.{a.name}" for a in node.names if (PACKAGE / a.name).exists()
                             or (PACKAGE / f"{a.name}.py").exists())
                found.add("jeoparda")
            elif node.module.startswith("jeoparda."):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names
                             if (ROOT / Path(*node.module.split(".")) / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jeoparda"))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_room_has_a_floor():
    rooms = {room_of(module_name(p)) for p in SOURCES}
    assert rooms - set(floors()) == set(), "rooms of jeoparda/ missing from docs/architecture.md"
    assert set(floors()) - rooms == set(), "docs/architecture.md names rooms that do not exist"


def test_imports_run_down_the_floors():
    floor = floors()
    upward = []
    for path in SOURCES:
        here = room_of(module_name(path))
        for target in imports(path):
            there = room_of(target)
            if there != here and floor[there] >= floor[here]:
                upward.append(f"{path.relative_to(ROOT)} imports {target} ({here}: floor {floor[here]}, "
                              f"{there}: floor {floor[there]})")
    assert upward == []


def test_no_import_circles_between_modules():
    """No module reaches itself through its imports (a package's face importing its own modules,
    and those modules importing each other, is the one kind of edge left out: it is not a circle
    unless a module also imports the face)."""
    graph = {module_name(p): {t for t in imports(p) if t != module_name(p)} for p in SOURCES}
    graph = {m: {t for t in ts if t in graph and not m.startswith(t + ".")} for m, ts in graph.items()}
    circles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in trail:
                circles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, trail + [nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert circles == []


@pytest.mark.parametrize("folder", ["jeoparda", "benchmarks", "scripts"])
def test_no_module_over_the_limit(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_code_cites_documents_of_the_repository_only():
    missing = []
    for path in SOURCES:
        # documents: docs/<name>.md, or a capitalised NAME.md (DESIGN.md, README.md); report.md is an output
        for cited in set(re.findall(r"\bdocs/[\w-]+\.md\b|\b[A-Z][A-Z_]+\.md\b", path.read_text(encoding="utf-8"))):
            if not ((ROOT / cited).is_file() or (ROOT / "docs" / cited).is_file()):
                missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert missing == []


def test_files_the_architecture_names_exist():
    """Every repository path docs/architecture.md names in backticks is there (``<kind>`` patterns aside)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = {m for m in re.findall(r"`((?:jeoparda|tests|docs|benchmarks|slurm|scripts)/[\w./-]+)`", text)}
    assert len(named) > 10
    assert sorted(n for n in named if not (ROOT / n).exists()) == []
