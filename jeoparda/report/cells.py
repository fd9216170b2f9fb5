"""How the report writes a figure into a Markdown table cell (one place, so every table agrees)."""
from __future__ import annotations

from jeoparda.report.scaling import Row

DASH = "–"   # a figure the runs did not measure
NA = "n/a"   # a figure that cannot be worked out (no FLOP count, no known peak)


def fmt(value: float | None, digits: int = 3, missing: str = DASH) -> str:
    return missing if value is None else f"{value:.{digits}f}"


def pct(value: float | None, spec: str = ".1f", missing: str = DASH) -> str:
    return missing if value is None else f"{100 * value:{spec}} %"


def tflops(value: float | None) -> str:
    """Achieved TFLOP/s to three significant digits (a CPU's 0.0435 and a GPU's 312 alike)."""
    return NA if value is None else f"{value:.3g}"


def cell(text: object) -> str:
    """Free text (a path, a note) that can neither end a cell nor a row."""
    return str(text).replace("|", "/").replace("\n", " ")


def time_cell(r: Row) -> str:
    """Time to target: the median over the runs that reached it, with how many did."""
    if r.target is None:
        return DASH
    if r.time_to_target_s is None:
        return f"not reached ({r.target_reached})"
    return f"{r.time_to_target_s:.1f} ({r.target_reached} reached)"


def on_dataset(dataset: str) -> str:
    return f" on {dataset}" if dataset else ""


def group_title(r: Row) -> str:
    """The configuration a row measured, as a heading says it (system aside)."""
    return f"{r.model}{on_dataset(r.dataset)} ({r.task}), {r.mode} scaling, {r.data_backend} data"
