"""A report against a baseline (docs/benchmarking.md, "Baselines and regressions"): every figure of
every row is ok, regressed (beyond its bound on the worse side), improved (beyond the better side)
or missing; rows the baseline does not cover have no baseline, entries no row matched are missing.
Neither of the last two is a failure: only a regressed figure makes ``--fail-on-regression`` exit 3.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jeoparda.report.baseline_file import EXIT_REGRESSED, FIGURES, FILTERS, REQUIRED, Baseline, Bound, Entry, best_entry
from jeoparda.report.cells import cell
from jeoparda.report.scaling import finite
from jeoparda.safe_files import writing

__all__ = ["EXIT_REGRESSED", "Check", "baseline_section", "compare", "regression_lines", "write_baseline"]
VERDICTS = ("regressed", "improved", "ok", "missing", "no baseline")
_EPS = 1e-9  # relative slack at a bound: a figure exactly on it is ok despite rounding


@dataclass(frozen=True)
class Check:
    """One figure of one report row (or baseline entry) against the baseline."""

    label: str  # "alpha resnet18 2 workers", with the filters that tell rows apart
    key: dict[str, Any]
    figure: str | None  # None: a row without a baseline entry
    baseline: float | None
    current: float | None
    lower: float | None
    upper: float | None
    verdict: str
    where: str = ""  # the entry in the baseline file

    @property
    def change(self) -> float | None:
        """current / baseline - 1, where both exist and the baseline is not 0."""
        if self.current is None or not self.baseline:
            return None
        return self.current / self.baseline - 1


def verdict(figure: str, bound: Bound, current: float | None) -> str:
    """ok, regressed, improved (beyond the bound on the worse or better side) or missing."""
    if current is None:
        return "missing"
    slack = _EPS * abs(bound.value)
    below = bound.low is not None and current < bound.low - slack
    above = bound.high is not None and current > bound.high + slack
    worse, better = (below, above) if FIGURES[figure][0] == "higher" else (above, below)
    return "regressed" if worse else "improved" if better else "ok"


def _workers(n: Any) -> str:
    return f"{n} worker" + ("" if n == 1 else "s")


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    """System, model and workers; where rows share those, the filters in which they differ."""
    out = []
    for row in rows:
        triple = tuple(row.get(k) for k in REQUIRED)
        twins = [r for r in rows if tuple(r.get(k) for k in REQUIRED) == triple]
        differ = [k for k in FILTERS if len({str(r.get(k)) for r in twins}) > 1]
        extra = ", ".join(f"{k}={row.get(k)}" for k in differ)
        out.append(f"{row.get('system')} {row.get('model')} {_workers(row.get('workers'))}"
                   + (f" ({extra})" if extra else ""))
    return out


def _entry_label(entry: Entry) -> str:
    key = entry.key
    extra = ", ".join(f"{k}={key[k]}" for k in FILTERS if k in key)
    return f"{key['system']} {key['model']} {_workers(key['workers'])}" + (f" ({extra})" if extra else "")


def compare(current_summary: dict[str, Any], baseline: Baseline) -> list[Check]:
    """Each row of a report summary (OUT/summary.json's contract) against the entry of the baseline
    that matches it, then the entries no row matched, as missing."""
    rows = list(current_summary.get("rows") or [])
    checks: list[Check] = []
    matched: set[str] = set()
    for row, label in zip(rows, _labels(rows)):
        attrs = {k: row.get(k) for k in (*REQUIRED, *FILTERS)}
        matched.update(e.where for e in baseline.entries if e.matches(attrs))
        entry = best_entry(baseline.entries, attrs)
        if entry is None:
            checks.append(Check(label, attrs, None, None, None, None, None, "no baseline"))
            continue
        for figure, bound in entry.figures.items():
            current = finite(row.get(figure))
            checks.append(Check(label, attrs, figure, bound.value, current, bound.lower, bound.upper,
                                verdict(figure, bound, current), entry.where))
    for entry in baseline.entries:
        if entry.where not in matched:
            checks += [Check(_entry_label(entry), entry.key, figure, bound.value, None, bound.lower, bound.upper,
                             "missing", entry.where) for figure, bound in entry.figures.items()]
    return checks


def _num(value: float | None) -> str:
    return "–" if value is None else f"{round(value, 4)}"


def _pct(fraction: float) -> str:
    return f"{100 * abs(fraction):g} %"


def _bounds(c: Check) -> str:
    low = "–" if c.lower is None else f"-{_pct(c.lower)}"
    high = "–" if c.upper is None else f"+{_pct(c.upper)}"
    return f"{low} / {high}"


def regression_lines(checks: Iterable[Check], source: str) -> list[str]:
    """One line per regressed figure, e.g. "regressed: alpha resnet18 2 workers images_per_s_per_worker
    450.0 < 900.0 - 10 % (baseline FILE)"."""
    lines = []
    for c in checks:
        if c.verdict != "regressed":
            continue
        if FIGURES[c.figure or ""][0] == "higher":
            side = f"< {_num(c.baseline)} - {_pct(c.lower or 0.0)}"
        else:
            side = f"> {_num(c.baseline)} + {_pct(c.upper or 0.0)}"
        lines.append(f"regressed: {c.label} {c.figure} {_num(c.current)} {side} (baseline {source})")
    return lines


def missing_lines(checks: Iterable[Check], source: str) -> list[str]:
    """One line per baseline figure with nothing to compare with (its row, or the figure, absent
    from this report), e.g. "missing: beta resnet18 2 workers efficiency (baseline FILE)"."""
    return [f"missing: {c.label} {c.figure} (baseline {source})" for c in checks if c.verdict == "missing"]


def counts(checks: list[Check]) -> dict[str, int]:
    """How many checks of each verdict."""
    tally = Counter(c.verdict for c in checks)
    return {v: tally.get(v, 0) for v in VERDICTS}


def count_line(checks: list[Check], source: str) -> str:
    n = counts(checks)
    return (f"baseline {source}: figures {n['regressed']} regressed, {n['improved']} improved, {n['ok']} ok, "
            f"{n['missing']} missing; rows without a baseline entry: {n['no baseline']}")


def baseline_section(checks: list[Check], source: str = "") -> list[str]:
    """Markdown: a table of every check, regressions first, and the counts."""
    order = {v: i for i, v in enumerate(VERDICTS)}
    lines = [f"## Baseline{': ' + source if source else ''}", "",
             "Each row's figures against the baseline entry that matches it (system, model, workers and the "
             "filters the entry names; a named system before `*`). Change = current / baseline - 1; bounds are "
             "relative to the baseline. Higher is better for "
             + ", ".join(f for f, (b, _) in FIGURES.items() if b == "higher") + "; lower for "
             + ", ".join(f for f, (b, _) in FIGURES.items() if b == "lower") + ". Regressed: beyond the bound on "
             "the worse side; improved: beyond the bound on the better side; missing: a figure or entry the "
             "report lacks; no baseline: a row no entry matches.", "",
             "| row | figure | baseline | current | change | bounds | verdict |", "|---|---|---|---|---|---|---|"]
    for c in sorted(checks, key=lambda c: order[c.verdict]):
        change = "–" if c.change is None else f"{100 * c.change:+.1f} %"
        bounds = "–" if c.figure is None else _bounds(c)
        lines.append(f"| {cell(c.label)} | {c.figure or '–'} | {_num(c.baseline)} | {_num(c.current)} | {change} | "
                     f"{bounds} | {c.verdict} |")
    return lines + ["", count_line(checks, source or "file"), ""]


def write_baseline(out: Path, checks: list[Check], source: str) -> Path:
    """OUT/baseline.md: the section alone (the report links or embeds it)."""
    path = Path(out) / "baseline.md"
    with writing(path) as fh:  # a link at path is refused, never followed
        fh.write("\n".join(baseline_section(checks, source)))
    return path
