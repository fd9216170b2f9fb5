"""Check that every line of jeoparda that runs only on a GPU ran in the test suite (on the stand-in
accelerator, tests/standin_cuda.py), from the coverage data of a `make test` / `make coverage` run.

GPU-only lines are (1) every executable line of the device modules below, and (2) elsewhere in
jeoparda/, the bodies of ``if`` statements whose condition asks an accelerator's ``.gpu`` (and the
lines of conditional expressions that do). A line that cannot run without a real GPU is listed in
tests/gpu_only_lines.txt as ``path | the line's text | why``; benchmarks/gpu_check.py runs those on a
GPU. Exit 1, listing the lines, when one was not executed; a listed line that no longer exists, or
is now executed, is reported too (the list stays true).

Usage: python scripts/gpu_lines.py [--data .coverage] [--allow tests/gpu_only_lines.txt]
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVICE_MODULES = ("jeoparda/accelerator.py", "jeoparda/cuda_runtime.py", "jeoparda/devices.py",
                  "jeoparda/loaders/torch_loader.py",
                  "jeoparda/training/energy.py")


def asks_gpu(node: ast.AST) -> bool:
    """Whether an expression reads an attribute called ``gpu`` (``accel.gpu``, ``self.accel.gpu``)."""
    return any(isinstance(n, ast.Attribute) and n.attr == "gpu" for n in ast.walk(node))


def guarded_lines(tree: ast.AST) -> set[int]:
    """Lines that run only when an accelerator is a GPU: ``if ...gpu:`` bodies, ``... if ...gpu else``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and asks_gpu(node.test) and not isinstance(node.test, ast.UnaryOp):
            for stmt in node.body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
        elif isinstance(node, ast.IfExp) and asks_gpu(node.test):
            lines.add(node.body.lineno)
    return lines


def gpu_only(path: Path, executable: set[int]) -> set[int]:
    rel = path.relative_to(ROOT).as_posix()
    if rel in DEVICE_MODULES:
        return set(executable)
    return guarded_lines(ast.parse(path.read_text(encoding="utf-8"))) & executable


def read_allowed(path: Path) -> dict[tuple[str, str], str]:
    """``path | line text | reason`` entries; a missing reason is an error."""
    allowed: dict[tuple[str, str], str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(" | ")]
        if len(parts) != 3 or not all(parts):
            raise SystemExit(f"{path}:{number}: expected 'path | line text | reason', got {raw!r}")
        allowed[parts[0], parts[1]] = parts[2]
    return allowed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".coverage", help="combined coverage data file")
    parser.add_argument("--allow", type=Path, default=ROOT / "tests" / "gpu_only_lines.txt")
    args = parser.parse_args(argv)
    import coverage

    cov = coverage.Coverage(data_file=str(args.data))
    cov.load()
    data = cov.get_data()
    allowed = read_allowed(args.allow)
    used: set[tuple[str, str]] = set()
    missed, stale, total, ran = [], [], 0, 0
    for path in sorted((ROOT / "jeoparda").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        _, statements, _, _, _ = cov.analysis2(str(path))
        executed = set(data.lines(str(path)) or ())
        text = path.read_text(encoding="utf-8").splitlines()
        for line in sorted(gpu_only(path, set(statements))):
            key = (rel, text[line - 1].strip())
            total += 1
            if key in allowed:
                used.add(key)
                if line in executed:
                    stale.append(f"{rel}:{line}: listed as GPU-only but ran on the stand-in: {key[1]}")
                continue
            if line in executed:
                ran += 1
            else:
                missed.append(f"{rel}:{line}: {key[1]}")
    stale += [f"{p}: listed but no such GPU-only line: {t}" for p, t in allowed if (p, t) not in used]
    print(f"GPU-only lines: {total}; run on the stand-in: {ran}; listed as needing a real GPU: {len(used)}")
    for line in missed:
        print(f"not run: {line}")
    for line in stale:
        print(f"stale list entry: {line}")
    if missed or stale:
        print(f"{len(missed)} GPU-only line(s) not run, {len(stale)} stale entr(ies) in {args.allow}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
