"""Scaling projection: measured single-worker step time + interconnect model -> epoch time and efficiency.

One training step on p GPUs (``b`` images per GPU) is modelled as

  t_step(p) = t_data + t_compute + t_exposed(p)

t_compute (forward, backward, optimiser) and t_data come from a measurement on one worker and are
taken to grow linearly with the batch per GPU. The gradients (4 bytes per parameter) are
all-reduced in k = ceil(S / bucket) equal buckets, as DDP does, each costing T(p, S/k) from
:mod:`jeoparda.report.interconnect`; communication C = k T(p, S/k). Buckets are reduced while
backward (a fraction f_b of t_compute) still runs, so with overlap o in [0, 1]

  t_exposed(p) = max(T(p, S/k), C - o f_b t_compute)         (0 for p = 1)

the last bucket never hides. Weak scaling keeps b fixed: X(p) = p b / t_step(p), E(p) = t_step(1) /
t_step(p). Strong scaling keeps the global batch B: b = B / p, E(p) = t_step(1) / (p t_step(p)).
Epoch time = floor(I / global batch) steps x t_step, as the loader drops the training remainder.
"""
from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jeoparda.errors import JeopardaError
from jeoparda.report.interconnect import System, allreduce_time, ring_time, tree_time
from jeoparda.report.scaling import Row, read_run, speedup_efficiency
from jeoparda.safe_files import writing

BIGEARTHNET_TRAIN_IMAGES = 269_695  # BigEarthNet-S2 train split without cloudy/snowy patches
DEFAULT_BUCKET_BYTES = 25 * 2**20  # DDP's default bucket_cap_mb


@dataclass(frozen=True)
class Workload:
    """What one worker measured: per-step compute and data wait at ``batch_size`` images."""

    model: str
    batch_size: int
    compute_s: float
    data_wait_s: float
    gradient_bytes: int
    source: str = ""


@dataclass(frozen=True)
class ModelOptions:
    """Knobs of the step model (see the module docstring)."""

    mode: str = "weak"
    global_batch: int | None = None
    overlap: float = 1.0
    backward_fraction: float = 2 / 3
    bucket_bytes: int = DEFAULT_BUCKET_BYTES
    algorithm: str = "auto"
    train_images: int = BIGEARTHNET_TRAIN_IMAGES

    def check(self) -> None:
        if self.mode not in ("weak", "strong"):
            raise JeopardaError(f"mode must be weak or strong, got {self.mode!r}")
        if self.mode == "strong" and not self.global_batch:
            raise JeopardaError("strong scaling needs the global batch size (--global-batch)")
        if not 0 <= self.overlap <= 1 or not 0 <= self.backward_fraction <= 1:
            raise JeopardaError("overlap and backward fraction must lie between 0 and 1")
        if self.bucket_bytes < 1 or self.train_images < 1:
            raise JeopardaError("bucket size and training images must be positive")


def step_parts(work: Workload, system: System, p: int, batch: float, opts: ModelOptions) -> dict[str, Any]:
    """Seconds per step on p GPUs with ``batch`` images per GPU (data, compute, all-reduce, exposed,
    total) and the all-reduce algorithm used (``auto``: the faster for the bucket size)."""
    scale = batch / work.batch_size
    compute, data = work.compute_s * scale, work.data_wait_s * scale
    buckets = max(1, math.ceil(work.gradient_bytes / opts.bucket_bytes))
    size = work.gradient_bytes / buckets
    algorithm = opts.algorithm
    if algorithm == "auto":
        algorithm = "ring" if ring_time(system, p, size) <= tree_time(system, p, size) else "tree"
    per_bucket = allreduce_time(system, p, size, algorithm)
    comm = buckets * per_bucket
    exposed = 0.0 if p == 1 else max(per_bucket, comm - opts.overlap * opts.backward_fraction * compute)
    return {"data_s": data, "compute_s": compute, "allreduce_s": comm, "exposed_comm_s": exposed,
            "step_time_s": data + compute + exposed, "algorithm": algorithm}


def project(work: Workload, system: System, world_sizes: list[int], opts: ModelOptions) -> list[dict[str, Any]]:
    """One row per world size: batch, step parts, images/s, epoch time, speed-up and efficiency."""
    opts.check()
    base = None
    rows = []
    for p in sorted(set(world_sizes)):
        batch = (opts.global_batch or 0) / p if opts.mode == "strong" else work.batch_size
        if batch < 1:
            warnings.warn(f"{p} GPUs: fewer than one image per GPU at global batch {opts.global_batch}; "
                          "larger world sizes left out", stacklevel=2)
            break
        parts = step_parts(work, system, p, batch, opts)
        global_batch = batch * p
        steps = int(opts.train_images // global_batch)
        rate = global_batch / parts["step_time_s"]
        if base is None:
            base = (p, rate, parts["step_time_s"])
        # strong scaling runs the same steps at every p, so step times stand in for epoch times
        speedup, efficiency = speedup_efficiency(opts.mode, *base, p, rate, parts["step_time_s"])
        rows.append({"world_size": p, "nodes": math.ceil(p / system.gpus_per_node), "batch_per_gpu": batch,
                     "global_batch": global_batch, **parts, "images_per_s": rate,
                     "epoch_time_s": steps * parts["step_time_s"] if steps else None,
                     "speedup": speedup, "efficiency": efficiency})
    return rows


def workload_from_run(path: Path) -> Workload:
    """Per-step compute and data wait from a results log (``jeoparda train`` or ``bench train``)."""
    run = read_run(Path(path))
    if run is None:
        raise JeopardaError(f"{path}: not a readable results log")
    if run.status != "completed" or not run.epochs:
        raise JeopardaError(f"{run.path}: run is {run.status}, not a completed run with timed epochs")
    batch = int(run.start.batch_size_per_worker or 0)
    if batch < 1:
        raise JeopardaError(f"{run.path}: run_start lacks batch_size_per_worker")
    from jeoparda.models.complexity import gradient_bytes

    bench = (run.end.bench if run.end else None) or {}
    if bench.get("compute_s") is not None:
        compute, wait = float(bench["compute_s"]), float(bench["data_wait_s"])
    else:
        steps = run.steady("train_images") / (batch * run.world_size)
        step = run.steady("epoch_time_s") / steps
        wait = run.steady("data_wait_s") / steps if all(e.data_wait_s is not None for e in run.epochs) else 0.0
        compute = step - wait
        if run.world_size > 1:
            warnings.warn(f"{run.path}: measured on {run.world_size} workers without a compute/communication "
                          "split; its communication counts as compute (use a 1-worker run or bench train)",
                          stacklevel=2)
    return Workload(run.start.model, batch, compute, wait, gradient_bytes(run.start.model), str(run.path))


def write_projection(out: Path, work: Workload, system: System, opts: ModelOptions,
                     rows: list[dict[str, Any]]) -> Path:
    """OUT/projection.json (inputs and rows; ``jeoparda report --projection`` reads it) and OUT/projection.csv."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"format": "jeoparda-projection", "version": 1, "model": work.model, "mode": opts.mode,
           "workload": asdict(work), "system": system.as_dict(), "options": asdict(opts), "rows": rows}
    path = out / "projection.json"
    with writing(path) as fh:  # a link planted in OUT is refused, never followed
        fh.write(json.dumps(doc, indent=1) + "\n")
    with writing(out / "projection.csv") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_projection(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JeopardaError(f"{path}: cannot read projection ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != "jeoparda-projection" or not doc.get("rows"):
        raise JeopardaError(f"{path}: not a projection written by `jeoparda project --out`")
    return doc


def attach_projection(rows: list[Row], doc: dict[str, Any]) -> int:
    """Put a projection's figures on the measured rows of the same model, mode and global batch.

    Efficiency is re-based to the group's smallest measured world size when the projection has it,
    so both columns answer the same question. Returns how many rows got a projection.
    """
    by_size = {int(r["world_size"]): r for r in doc["rows"]}
    matched = 0
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault((row.model, row.mode, row.data_backend), []).append(row)
    for (model, mode, _), members in groups.items():
        if model != doc["model"] or mode != doc["mode"]:
            continue
        n0 = min(r.world_size for r in members)
        base = by_size.get(n0)
        for row in members:
            proj = by_size.get(row.world_size)
            if proj is None or base is None or round(proj["global_batch"]) != row.global_batch_size:
                continue
            row.projected_images_per_s = proj["images_per_s"]
            _, row.projected_efficiency = speedup_efficiency(
                mode, n0, base["images_per_s"], base["step_time_s"], row.world_size, proj["images_per_s"],
                proj["step_time_s"])
            row.projection_error = row.images_per_s / proj["images_per_s"] - 1
            matched += 1
    return matched
