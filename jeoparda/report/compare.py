"""Systems side by side: for every configuration measured on more than one system, one table with
a row per system and worker count, and two plots with a line per system (report/plots.py)."""
from __future__ import annotations

from jeoparda.report.cells import NA, cell, fmt, group_title, pct, tflops, time_cell
from jeoparda.report.scaling import Row

#: What a comparison holds fixed: the model, task and data set, and (so that efficiencies and
#: throughputs answer the same question) the scaling mode and the data backend.
CompareKey = tuple[str, str, str, str, str]


def compare_key(r: Row) -> CompareKey:
    return r.model, r.task, r.dataset, r.mode, r.data_backend


def comparisons(rows: list[Row]) -> list[tuple[CompareKey, list[Row]]]:
    """The configurations measured on more than one system, each with its rows ordered by system
    and worker count."""
    groups: dict[CompareKey, list[Row]] = {}
    for r in rows:
        groups.setdefault(compare_key(r), []).append(r)
    return [(key, sorted(mine, key=lambda r: (r.system_label, r.world_size)))
            for key, mine in sorted(groups.items()) if len({r.system_label for r in mine}) > 1]


def comparison_lines(rows: list[Row], plots: list[str]) -> list[str]:
    """The section of one comparison; ``plots`` are the file names of its PNGs."""
    metric = rows[0].quality_label  # one task, so one metric
    target = next((r.target for r in rows if r.target is not None), None)
    lines = [f"## Comparison: {group_title(rows[0])}", "",
             f"Measured on {len({r.system_label for r in rows})} systems. Images/s per worker compares machines "
             "directly; efficiency is each system's own, against its smallest worker count. TFLOP/s per worker "
             "is achieved (model FLOPs x images/s / workers); MFU is that over the device's peak (n/a where "
             "the peak or the FLOP count is unknown).", "",
             "| system | hardware | workers | images/s per worker | efficiency | epoch time (s) | time to "
             f"{'target' if target is None else f'{metric} {fmt(target, 2)}'} (s) | energy (J/image) "
             "| TFLOP/s per worker | MFU |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {cell(r.system_label)} | {cell(r.hardware or '–')} | {r.world_size} | "
                     f"{r.images_per_s_per_worker:.1f} | {pct(r.efficiency)} | {r.epoch_time_s:.2f} | "
                     f"{time_cell(r)} | {fmt(r.energy_per_image_j, 4)} | {tflops(r.tflops_per_worker)} | "
                     f"{pct(r.mfu, missing=NA)} |")
    lines.append("")
    lines += [f"![{name.removesuffix('.png')}]({name})" for name in plots]
    return lines + [""]
