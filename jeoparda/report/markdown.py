"""report.md: how to read it, the summary, the comparisons, each system's scaling tables, then the
details (every run's step split and bottleneck, runs not counted, the environment)."""
from __future__ import annotations

from collections.abc import Sequence

from jeoparda.report.cells import DASH, NA, cell, fmt, group_title, pct, tflops, time_cell
from jeoparda.report.scaling import Row, Run, finite
from jeoparda.report.summary import summary_lines

HOW_TO_READ = (
    "How to read it: the summary comes first, one line per system and configuration; then, for every "
    "configuration measured on more than one system, a comparison of the systems side by side; then each "
    "system's scaling tables and the plots; details last (every run's step split and bottleneck, the runs "
    "not counted, the environment). Runs of different systems are never mixed: speed-up and efficiency are "
    "worked out per system against that system's smallest worker count N0. Throughput is the median "
    "images/s of the epochs after the first; efficiency as in docs/benchmarking.md, \"Formulas\" (weak: "
    "X(N)/(N/N0·X(N0)); strong: T(N0)·N0/(T(N)·N)). Logs that do not name their system are grouped as "
    "\"unknown system\"; \"–\": not measured; \"n/a\": cannot be worked out from the log.")


def _group_table(mine: list[Row]) -> list[str]:
    """One scaling group's table (one system, one configuration, a row per worker count)."""
    timed = any(r.target is not None for r in mine)
    metered = any(r.energy_per_image_j is not None for r in mine)
    flops = any(r.tflops_per_worker is not None for r in mine)
    metric = mine[0].quality_label
    lines = [f"### {group_title(mine[0])}", "",
             "| workers | nodes | global batch | images/s | epoch time (s) | speed-up | efficiency "
             f"| {metric} |" + (f" time to {metric} {fmt(mine[0].target, 2)} (s) |" if timed else "")
             + (" energy (J/image) |" if metered else "") + (" TFLOP/s per worker | MFU |" if flops else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if timed else "") + ("---|" if metered else "")
             + ("---|---|" if flops else "")]
    for r in mine:
        lines.append(f"| {r.world_size} | {r.nodes} | {r.global_batch_size} | {r.images_per_s:.1f} | "
                     f"{r.epoch_time_s:.2f} | {r.speedup:.2f} | {pct(r.efficiency)} | "
                     f"{fmt(r.quality)} |" + (f" {time_cell(r)} |" if timed else "")
                     + (f" {fmt(r.energy_per_image_j, 4)} |" if metered else "")
                     + (f" {tflops(r.tflops_per_worker)} | {pct(r.mfu, missing=NA)} |" if flops else ""))
    return lines + [""]


def scaling_sections(rows: list[Row]) -> list[str]:
    """Each system's scaling: a heading per system, a table per configuration."""
    lines: list[str] = []
    for label in sorted({r.system_label for r in rows}):
        mine = [r for r in rows if r.system_label == label]
        shown = mine[0].hardware if mine[0].hardware and mine[0].hardware not in label else ""
        lines += [f"## Scaling on {label}" + (f" ({shown})" if shown else ""), ""]
        groups: dict[tuple, list[Row]] = {}
        for r in mine:
            groups.setdefault((r.model, r.mode, r.data_backend, r.task, r.dataset), []).append(r)
        for key in sorted(groups):
            lines += _group_table(groups[key])
    return lines


def _split(run: Run) -> str:
    """One step of the steady epochs, split as run_end says (docs/results-log.md, ``step_split``)."""
    split = (run.end.step_split if run.end else None) or {}
    step, wait = finite(split.get("step_s")), finite(split.get("data_wait_s"))
    if step is None:
        return DASH
    compute, comm = finite(split.get("compute_s")), finite(split.get("communication_s"))
    parts = [f"step {step:.4f} s", f"data {fmt(wait, 4)}"]
    if compute is None and comm is None:
        rest = None if wait is None else step - wait
        parts.append(f"compute and communication {fmt(rest, 4)} (not told apart)")
    else:
        parts += [f"compute {fmt(compute, 4)}", f"communication {fmt(comm, 4)}"]
    return ", ".join(parts)


def details_lines(runs: list[Run], labels: dict[str, str]) -> list[str]:
    """Every run: its system, throughput, step split and bottleneck verdict ("–" in older logs)."""
    lines = ["## Per-run details", "",
             "| run | system | workers | status | images/s | step split | bottleneck | what to try |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        end = run.end
        rate = f"{run.steady('images_per_s'):.1f}" if run.epochs else DASH
        lines.append(f"| {cell(run.path.parent.name)} | {cell(labels.get(str(run.path), run.system))} | "
                     f"{run.world_size} | {run.status} | {rate} | {_split(run)} | "
                     f"{cell(end.bottleneck) if end and end.bottleneck else DASH} | "
                     f"{cell(end.bottleneck_note) if end and end.bottleneck_note else DASH} |")
    return lines + [""]


def not_counted(runs: list[Run], skipped: list[str]) -> list[str]:
    other = [r for r in runs if r.status != "completed"]
    if not (other or skipped):
        return []
    return (["## Runs not counted", ""] + [f"- {r.path}: {r.status}" for r in other]
            + [f"- {s}: unreadable or incomplete log, or not a training run" for s in skipped] + [""])


def environment(runs: list[Run]) -> list[str]:
    lines = ["## Environment", "",
             "| run | system | hardware | world size | nodes | device | GPUs/node | hosts | torch | cuda | mpi "
             "| dali | horovod |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        v, st = run.start.versions or {}, run.start
        device = st.device_name or st.device or ""
        gpus = "" if st.gpus_per_node is None else st.gpus_per_node
        lines.append(f"| {cell(run.path.parent.name)} | {cell(run.system)} | {cell(run.hardware or DASH)} | "
                     f"{run.world_size} | {st.nodes} | {cell(device)} | {gpus} | {cell(', '.join(st.hosts or []))} "
                     f"| {v.get('torch')} | {v.get('cuda')} | {v.get('mpi')} | {v.get('dali')} | {v.get('horovod')} |")
    return lines + [""]


def markdown(rows: list[Row], runs: list[Run], skipped: list[str], compared: list[list[str]],
             projections: list[list[str]], plots: list[str], judged: Sequence[str] = (),
             io: Sequence[str] = ()) -> str:
    """The whole report.md; ``compared``, ``projections``, ``judged`` (against a baseline) and ``io``
    (the storage benchmarks) are finished sections, ``plots`` the file names of the plots."""
    lines = ["# Scaling report", "", HOW_TO_READ, ""]
    lines += summary_lines(rows, runs)
    lines += list(judged)
    for section in compared:
        lines += section
    lines += scaling_sections(rows)
    for section in projections:
        lines += section
    lines += list(io)
    lines += ["## Plots", ""] + [f"![{p.removesuffix('.png')}]({p})" for p in plots] + [""]
    labels = {path: r.system_label for r in rows for path in r.runs}
    lines += details_lines(runs, labels) + not_counted(runs, skipped) + environment(runs)
    return "\n".join(lines)
