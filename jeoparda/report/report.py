"""``jeoparda report``: results logs -> scaling.csv, report.md, report.html and PNG plots."""
from __future__ import annotations

import base64
import csv
import glob
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jeoparda.errors import JeopardaError
from jeoparda.report.plots import confusion_plot, write_plots
from jeoparda.report.projection import attach_projection, read_projection
from jeoparda.report.scaling import Row, Run, read_run, scaling_rows

CSV_COLUMNS = ("model", "mode", "data_backend", "task", "dataset", "world_size", "nodes", "global_batch_size",
               "images_per_s", "epoch_time_s", "speedup", "efficiency", "quality_key", "quality", "f1_samples",
               "accuracy", "target", "time_to_target_s", "target_reached", "energy_per_image_j",
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
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for r in rows:
            out.writerow(["" if getattr(r, c) is None else getattr(r, c) for c in CSV_COLUMNS])


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _time_cell(r: Row) -> str:
    if r.target is None:
        return "–"
    if r.time_to_target_s is None:
        return f"not reached ({r.target_reached})"
    return f"{r.time_to_target_s:.1f} ({r.target_reached} reached)"


def _pct(value: float | None, spec: str) -> str:
    return "–" if value is None else f"{100 * value:{spec}} %"


def projection_section(rows: list[Row], doc: dict[str, Any], source: str) -> list[str]:
    """Projection next to measurement for the rows a projection matched."""
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
    lines += ["| data | workers | measured images/s | projected images/s | error | measured efficiency "
              "| projected efficiency |", "|---|---|---|---|---|---|---|"]
    for r in matched:
        lines.append(f"| {r.data_backend} | {r.world_size} | {r.images_per_s:.1f} | {r.projected_images_per_s:.1f} | "
                     f"{_pct(r.projection_error, '+.1f')} | {100 * r.efficiency:.1f} % | "
                     f"{_pct(r.projected_efficiency, '.1f')} |")
    return lines + [""]


def _group(r: Row) -> tuple[str, str, str, str, str]:
    return r.model, r.mode, r.data_backend, r.task, r.dataset


def markdown(rows: list[Row], runs: list[Run], skipped: list[str]) -> str:
    lines = ["# Scaling report", "",
             "Throughput is the median images/s of the epochs after the first; efficiency as in "
             "docs/benchmarks.md (weak: X(N)/(N/N0·X(N0)); strong: T(N0)·N0/(T(N)·N)).", ""]
    for group in sorted({_group(r) for r in rows}):
        mine = [r for r in rows if _group(r) == group]
        model, mode, backend, task, dataset = group
        on = f" on {dataset}" if dataset else ""
        timed = any(r.target is not None for r in mine)
        metered = any(r.energy_per_image_j is not None for r in mine)
        metric = mine[0].quality_label
        lines += [f"## {model}{on} ({task}), {mode} scaling, {backend} data", "",
                  "| workers | nodes | global batch | images/s | epoch time (s) | speed-up | efficiency "
                  f"| {metric} |" + (f" time to {metric} {_fmt(mine[0].target, 2)} (s) |" if timed else "")
                  + (" energy (J/image) |" if metered else ""),
                  "|---|---|---|---|---|---|---|---|" + ("---|" if timed else "") + ("---|" if metered else "")]
        for r in mine:
            lines.append(f"| {r.world_size} | {r.nodes} | {r.global_batch_size} | {r.images_per_s:.1f} | "
                         f"{r.epoch_time_s:.2f} | {r.speedup:.2f} | {100 * r.efficiency:.1f} % | "
                         f"{_fmt(r.quality)} |" + (f" {_time_cell(r)} |" if timed else "")
                         + (f" {_fmt(r.energy_per_image_j, 4)} |" if metered else ""))
        lines.append("")
    other = [r for r in runs if r.status != "completed"]
    if other or skipped:
        lines += ["## Runs not counted", ""]
        lines += [f"- {r.path}: {r.status}" for r in other]
        lines += [f"- {s}: unreadable or incomplete log, or not a training run" for s in skipped]
        lines.append("")
    lines += ["## Environment", "",
              "| run | world size | nodes | device | GPUs/node | hosts | torch | cuda | mpi | dali | horovod |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        v, st = run.start.versions or {}, run.start
        device = st.device_name or st.device or ""
        gpus = "" if st.gpus_per_node is None else st.gpus_per_node
        lines.append(f"| {run.path.parent.name} | {run.world_size} | {st.nodes} | {device} | "
                     f"{gpus} | {', '.join(st.hosts or [])} | {v.get('torch')} | "
                     f"{v.get('cuda')} | {v.get('mpi')} | {v.get('dali')} | {v.get('horovod')} |")
    return "\n".join(lines) + "\n"


def to_html(markdown_text: str, plots: list[Path]) -> str:
    """A self-contained page: the report's tables and text, the plots embedded as data URIs."""
    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            cells = [[c.strip() for c in line.strip("|").split("|")] for line in table if not set(line) <= set("|-")]
            head, rest = cells[0], cells[1:]
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                                  for row in rest) + "</table>")
            table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("!["):
            continue  # images are embedded below
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p>&bull; {html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    for png in plots:
        data = base64.b64encode(png.read_bytes()).decode()
        body.append(f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}"></figure>')
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>jeoparda scaling report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def make_report(patterns: list[str], out: Path, projections: Sequence[Path] = ()) -> tuple[list[Row], list[Run]]:
    """Read the runs, compute the rows, attach projections (``jeoparda project --out``), write everything."""
    runs, skipped = [], []
    for path in expand(patterns):
        run = read_run(path)
        (runs.append(run) if run else skipped.append(str(path)))
    rows = scaling_rows(runs)
    docs = [(read_projection(p), str(p)) for p in projections]
    for doc, _ in docs:
        attach_projection(rows, doc)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "scaling.csv")
    plots = write_plots(rows, out) + confusion_plot(runs, out)
    text = markdown(rows, runs, skipped)
    for doc, source in docs:
        text += "\n".join(projection_section(rows, doc, source)) + "\n"
    text += "\n## Plots\n\n" + "".join(f"![{p.stem}]({p.name})\n" for p in plots)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(to_html(text, plots), encoding="utf-8")
    return rows, runs
