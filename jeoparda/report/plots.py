"""PNG plots of a scaling report: throughput (with the ideal line), efficiency, epoch time, each
run's quality (its task's metric) against global batch size (does it hold as the batch grows?),
the confusion matrix of the largest single-label run, and for each configuration measured on more
than one system, throughput per worker and efficiency with a line per system. A figure per plot,
never per run, so a report over hundreds of runs stays quick."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jeoparda.report.scaling import Row, Run  # noqa: E402
from jeoparda.safe_files import writing  # noqa: E402

PLOTS = {
    "throughput.png": "Throughput vs workers",
    "efficiency.png": "Scaling efficiency vs workers",
    "epoch_time.png": "Epoch time vs workers",
    "quality_vs_batch.png": "Quality vs global batch size",
}


def _groups(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows by scaling group, named for the legend (the system first where there are several)."""
    several = len({r.system_label for r in rows}) > 1
    out: dict[str, list[Row]] = {}
    for r in rows:
        on = f" on {r.dataset}" if r.dataset else ""
        system = f"{r.system_label}: " if several else ""
        out.setdefault(f"{system}{r.model}{on}, {r.mode}, {r.data_backend}", []).append(r)
    return out


#: Legend entries that still fit inside the axes; a longer legend goes beside them.
LEGEND_INSIDE = 8
SIZE = (6.4, 4.2)  # inches, at 100 dpi
MARGINS = {"left": 0.85, "right": 0.25, "bottom": 0.6, "top": 0.45}  # inches around the axes


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=SIZE, dpi=100)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Any, ax: Any, path: Path, ticks: list[int]) -> None:
    """Ticks, legend and fixed margins (a layout pass per figure was the slowest step of a report
    over many runs), then the PNG. A legend too long for the axes goes beside them and the picture
    is cropped to what it holds."""
    if ticks:  # only the measured worker counts or batch sizes, never fractions
        ax.set_xticks(sorted(set(ticks)))
    entries = len(ax.get_legend_handles_labels()[0])
    beside = entries > LEGEND_INSIDE
    width, height = SIZE[0], max(SIZE[1], 0.16 * entries + 1.2) if beside else SIZE[1]
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=MARGINS["left"] / width, right=1 - MARGINS["right"] / width,
                        bottom=MARGINS["bottom"] / height, top=1 - MARGINS["top"] / height)
    if beside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    elif entries:
        ax.legend(fontsize=8)
    with writing(path, text=False) as fh:  # a link at path is refused, never followed
        fig.savefig(fh, format="png", bbox_inches="tight" if beside else None)
    plt.close(fig)


def _projected(ax: Any, rows: list[Row], key: str, color: str, name: str, scale: float = 1) -> None:
    """The projection's figures as crosses on a dotted line, where the report has them."""
    pts = [(r.world_size, scale * getattr(r, key)) for r in rows if getattr(r, key) is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "x:", color=color, label=f"{name} (projected)")


def write_plots(rows: list[Row], out: Path) -> list[Path]:
    """Write the four PNGs into ``out``; returns their paths."""
    groups = _groups(rows)
    workers = [r.world_size for r in rows]
    fig, ax = _figure(PLOTS["throughput.png"], "workers", "images/s")
    for name, rs in groups.items():
        n = [r.world_size for r in rs]
        line, = ax.plot(n, [r.images_per_s for r in rs], "o-", label=name)
        if rs[0].mode != "strong":
            ideal = [rs[0].images_per_s * k / n[0] for k in n]
            ax.plot(n, ideal, "--", color=line.get_color(), alpha=0.6)
        _projected(ax, rs, "projected_images_per_s", line.get_color(), name)
    if any(rs[0].mode != "strong" for rs in groups.values()):
        ax.plot([], [], "--", color="grey", alpha=0.6, label="ideal (dashed, in each line's colour)")
    _save(fig, ax, out / "throughput.png", workers)
    fig, ax = _figure(PLOTS["efficiency.png"], "workers", "efficiency (%)")
    for name, rs in groups.items():
        line, = ax.plot([r.world_size for r in rs], [100 * r.efficiency for r in rs], "o-", label=name)
        _projected(ax, rs, "projected_efficiency", line.get_color(), name, scale=100)
    ax.axhline(100, color="grey", linestyle="--", alpha=0.6)
    _save(fig, ax, out / "efficiency.png", workers)
    fig, ax = _figure(PLOTS["epoch_time.png"], "workers", "epoch time (s)")
    for name, rs in groups.items():
        ax.plot([r.world_size for r in rs], [r.epoch_time_s for r in rs], "o-", label=name)
    _save(fig, ax, out / "epoch_time.png", workers)
    fig, ax = _figure(PLOTS["quality_vs_batch.png"], "global batch size", "quality (each run's task metric)")
    for name, rs in groups.items():
        pts = sorted((r.global_batch_size, r.quality) for r in rs if r.quality is not None)
        if pts:
            metric = rs[0].quality_label
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{name}: {metric}")
    _save(fig, ax, out / "quality_vs_batch.png", [r.global_batch_size for r in rows if r.quality is not None])
    paths = [out / name for name in PLOTS]
    timed = [r for r in rows if r.time_to_target_s is not None]
    if timed:
        fig, ax = _figure("Time to target vs workers", "workers", "time to target (s)")
        for name, rs in groups.items():
            pts = sorted((r.world_size, r.time_to_target_s) for r in rs if r.time_to_target_s is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{name} (target {rs[0].target})")
        _save(fig, ax, out / "time_to_target.png", [r.world_size for r in timed])
        paths.append(out / "time_to_target.png")
    return paths


def comparison_names(stem: str) -> tuple[str, str]:
    """The file names of one comparison's two plots: throughput per worker, efficiency."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "systems"
    return f"compare-{slug}-per-worker.png", f"compare-{slug}-efficiency.png"


def comparison_plots(rows: list[Row], title: str, names: tuple[str, str], out: Path) -> list[Path]:
    """Throughput per worker and efficiency against workers, one line per system."""
    by_system: dict[str, list[Row]] = {}
    for r in sorted(rows, key=lambda r: (r.system_label, r.world_size)):
        by_system.setdefault(r.system_label, []).append(r)
    workers = [r.world_size for r in rows]
    fig, ax = _figure(f"Images/s per worker: {title}", "workers", "images/s per worker")
    ax.title.set_fontsize(9)
    for system, rs in by_system.items():
        ax.plot([r.world_size for r in rs], [r.images_per_s_per_worker for r in rs], "o-", label=system)
    _save(fig, ax, out / names[0], workers)
    fig, ax = _figure(f"Efficiency: {title}", "workers", "efficiency (%, against each system's N0)")
    ax.title.set_fontsize(9)
    for system, rs in by_system.items():
        ax.plot([r.world_size for r in rs], [100 * r.efficiency for r in rs], "o-", label=system)
    ax.axhline(100, color="grey", linestyle="--", alpha=0.6)
    _save(fig, ax, out / names[1], workers)
    return [out / n for n in names]


def confusion_plot(runs: list[Run], out: Path) -> list[Path]:
    """The confusion matrix of the largest completed run whose task reports one (test split, else
    the last validation), as confusion_matrix.png; nothing when there is no such run."""
    def final(r: Run) -> dict:
        return (r.end.test if r.end else None) or (r.epochs[-1].metrics if r.epochs else {})

    done = [r for r in runs if r.status == "completed" and "confusion_matrix" in final(r)]
    best = max(done, key=lambda r: (r.world_size, str(r.path)), default=None)
    if best is None:
        return []
    scores = final(best)
    cm = np.array(scores["confusion_matrix"], dtype=float)
    classes = best.start.classes or [str(i) for i in range(len(cm))]
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cm)), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(cm)), classes, fontsize=7)
    for i in range(len(cm)):
        for j in range(len(cm)):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=9 if len(cm) <= 10 else 6,
                        color="white" if shown[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (counts; shade: row share): {best.start.model}, "
                 f"{best.world_size} workers ({best.path.parent.name})", fontsize=9)
    fig.tight_layout()
    path = out / "confusion_matrix.png"
    with writing(path, text=False) as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return [path]
