"""The report's summary: the table that opens report.md and OUT/summary.json, its machine-readable
twin (one entry per scaling row; docs/benchmarking.md, "Comparing systems")."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jeoparda.report.cells import DASH, NA, cell, fmt, pct
from jeoparda.report.scaling import Row, Run, most_common_bottleneck
from jeoparda.safe_files import writing

SUMMARY_FORMAT = "jeoparda-report-summary"
SUMMARY_VERSION = 1


def summary_entry(r: Row) -> dict[str, Any]:
    """One row as summary.json holds it (figures not measured are null)."""
    return {"system": r.system, "hardware": r.hardware, "model": r.model, "task": r.task, "dataset": r.dataset,
            "mode": r.mode, "data_backend": r.data_backend, "workers": r.world_size, "nodes": r.nodes,
            "global_batch_size": r.global_batch_size, "runs": len(r.runs), "images_per_s": r.images_per_s,
            "images_per_s_per_worker": r.images_per_s_per_worker, "efficiency": r.efficiency,
            "epoch_time_s": r.epoch_time_s, "time_to_target_s": r.time_to_target_s,
            "energy_per_image_j": r.energy_per_image_j, "tflops_per_worker": r.tflops_per_worker,
            "mfu": r.mfu, "quality_key": r.quality_key, "quality": r.quality, "bottleneck": r.bottleneck}


def summary_doc(rows: list[Row]) -> dict[str, Any]:
    """What OUT/summary.json holds: every scaling row, for tools that compare reports (--baseline)."""
    return {"format": SUMMARY_FORMAT, "version": SUMMARY_VERSION, "rows": [summary_entry(r) for r in rows]}


def write_summary(rows: list[Row], path: Path) -> None:
    """OUT/summary.json (:func:`summary_doc`)."""
    doc = summary_doc(rows)
    with writing(path) as fh:  # a link at path is refused, never followed
        fh.write(json.dumps(doc, indent=1) + "\n")


def summary_key(r: Row) -> tuple[str, str, str, str, str, str]:
    """One summary line: a system and a configuration, all worker counts together."""
    return r.system_label, r.model, r.task, r.dataset, r.mode, r.data_backend


def summary_lines(rows: list[Row], runs: list[Run]) -> list[str]:
    """The summary table: one line per system and configuration, the scaling rows condensed."""
    by_path = {str(r.path): r for r in runs}
    lines = ["## Summary", "",
             "One line per system and configuration. Best images/s per worker: the highest per-worker "
             "throughput measured, at the worker count in brackets; MFU is that row's. Efficiency and "
             "quality: at the largest worker count. Bottleneck: the verdict most of the runs gave.", "",
             "| system | hardware | model | task | data set | mode | data | workers | best images/s per worker "
             "| efficiency at largest N | MFU | quality at largest N | bottleneck |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(summary_key(r), []).append(r)
    for (label, model, task, dataset, mode, backend), mine in sorted(groups.items()):
        best = max(mine, key=lambda r: (r.images_per_s_per_worker, -r.world_size))
        last = max(mine, key=lambda r: r.world_size)
        verdict = most_common_bottleneck([by_path[p] for r in mine for p in r.runs if p in by_path])
        quality = DASH if last.quality is None else f"{last.quality_label} {fmt(last.quality)}"
        lines.append(f"| {cell(label)} | {cell(mine[0].hardware or DASH)} | {cell(model)} | {task} | "
                     f"{cell(dataset or DASH)} | {mode} | {backend} | {', '.join(str(r.world_size) for r in mine)} | "
                     f"{best.images_per_s_per_worker:.1f} ({best.world_size}) | {pct(last.efficiency)} "
                     f"({last.world_size}) | {pct(best.mfu, missing=NA)} | {quality} | "
                     f"{verdict or DASH} |")
    return lines + [""]
