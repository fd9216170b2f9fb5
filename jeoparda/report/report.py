"""``jeoparda report``: results logs -> scaling.csv, summary.json, report.md, report.html and PNG plots
(``jeoparda bench io`` logs go to the I/O section, not the scaling).

The figures come from report/scaling.py (rows per system and configuration), the text from
report/markdown.py, report/summary.py and report/compare.py, the page from report/page.py.
"""
from __future__ import annotations

import csv
import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jeoparda.errors import JeopardaError
from jeoparda.report.baseline import baseline_section, compare, write_baseline
from jeoparda.report.baseline_file import Baseline
from jeoparda.report.cells import group_title, pct
from jeoparda.report.compare import comparison_lines, comparisons
from jeoparda.report.io_section import io_section
from jeoparda.report.markdown import markdown
from jeoparda.report.page import to_html
from jeoparda.report.plots import comparison_names, comparison_plots, confusion_plot, write_plots
from jeoparda.report.projection import attach_projection, read_projection
from jeoparda.report.scaling import IO_JOB, Row, Run, read_run, scaling_rows
from jeoparda.report.summary import summary_doc, write_summary
from jeoparda.safe_files import writing

CSV_COLUMNS = ("system", "hardware", "model", "mode", "data_backend", "task", "dataset", "world_size", "nodes",
               "global_batch_size", "images_per_s", "images_per_s_per_worker", "epoch_time_s", "speedup",
               "efficiency", "quality_key", "quality", "f1_samples", "accuracy", "target", "time_to_target_s",
               "target_reached", "energy_per_image_j", "tflops_per_worker", "mfu", "bottleneck",
               "projected_images_per_s", "projected_efficiency", "projection_error")


def expand(patterns: list[str]) -> list[Path]:
    """Run folders and results logs named directly or by glob, in order, without repeats."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).exists() else [])
        if not matches:
            raise JeopardaError(f"{pattern}: no such run folder or results log")
        found += [Path(m) for m in matches if Path(m) not in found]
    return found


def write_csv(rows: list[Row], path: Path) -> None:
    with writing(path) as fh:  # a link at path is refused, never followed
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for r in rows:
            out.writerow(["" if getattr(r, c) is None else getattr(r, c) for c in CSV_COLUMNS])


def projection_section(rows: list[Row], doc: dict[str, Any], source: str) -> list[str]:
    """Projection next to measurement for the rows a projection matched (of every system: the
    projection models one machine, its error says how far each measured one is from it)."""
    system = doc["system"]
    lines = [f"## Projection vs measurement: {doc['model']}, {doc['mode']} scaling", "",
             f"From {source}: system {system['name']} ({system['gpus_per_node']} workers per node, "
             f"{system['intra_bandwidth_gbs']:.3g} GB/s in a node, {system['node_bandwidth_gbs']:.3g} GB/s "
             f"per node across), step measured in {doc['workload']['source']}. "
             "Error = measured / projected images/s - 1.", ""]
    matched = [r for r in rows if r.projected_images_per_s is not None
               and (r.model, r.mode) == (doc["model"], doc["mode"])]
    if not matched:
        return lines + ["No measured world size matches this projection (model, mode and global batch).", ""]
    lines += ["| system | data | workers | measured images/s | projected images/s | error | measured efficiency "
              "| projected efficiency |", "|---|---|---|---|---|---|---|---|"]
    for r in matched:
        lines.append(f"| {r.system_label} | {r.data_backend} | {r.world_size} | {r.images_per_s:.1f} | "
                     f"{r.projected_images_per_s:.1f} | {pct(r.projection_error, '+.1f')} | {pct(r.efficiency)} | "
                     f"{pct(r.projected_efficiency)} |")
    return lines + [""]


def _comparisons(rows: list[Row], out: Path) -> tuple[list[list[str]], list[Path]]:
    """Each comparison's section and its two plots."""
    sections: list[list[str]] = []
    paths: list[Path] = []
    used: set[str] = set()
    for (model, task, dataset, mode, backend), mine in comparisons(rows):
        stem = "-".join(x for x in (model, dataset, task, mode, backend) if x)
        names = comparison_names(stem)
        if names[0] in used:  # two configurations whose names differ only in odd characters
            names = comparison_names(f"{stem}-{len(sections)}")
        used.add(names[0])
        made = comparison_plots(mine, group_title(mine[0]), names, out)
        sections.append(comparison_lines(mine, [p.name for p in made]))
        paths += made
    return sections, paths


def make_report(patterns: list[str], out: Path, projections: Sequence[Path] = (),
                baseline: Baseline | None = None) -> tuple[list[Row], list[Run]]:
    """Read the runs, compute the rows, attach projections (``jeoparda project --out``), judge them
    against ``baseline`` (its section follows the summary; also OUT/baseline.md), write everything;
    returns the rows and every run read (training runs first, then bench io runs)."""
    runs: list[Run] = []
    io_runs: list[Run] = []
    skipped: list[str] = []
    for path in expand(patterns):
        run = read_run(path, io=True)
        if run is None:
            skipped.append(str(path))
        else:
            (io_runs if run.start.job == IO_JOB else runs).append(run)
    rows = scaling_rows(runs)
    docs = [(read_projection(p), str(p)) for p in projections]
    for doc, _ in docs:
        for label in sorted({r.system_label for r in rows}):  # each system re-based to its own N0
            attach_projection([r for r in rows if r.system_label == label], doc)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "scaling.csv")
    write_summary(rows, out / "summary.json")
    plots = write_plots(rows, out) + confusion_plot(runs, out)
    compared, compare_plots = _comparisons(rows, out)
    judged = []
    if baseline is not None:
        checks = compare(summary_doc(rows), baseline)
        write_baseline(out, checks, baseline.source)
        judged = baseline_section(checks, baseline.source)
    text = markdown(rows, runs, skipped, compared, [projection_section(rows, doc, source) for doc, source in docs],
                    [p.name for p in plots], judged, io_section(io_runs))
    for name, body in (("report.md", text), ("report.html", to_html(text, plots + compare_plots))):
        with writing(out / name) as fh:
            fh.write(body)
    return rows, runs + io_runs
