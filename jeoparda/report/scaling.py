"""Scaling maths over results logs (docs/benchmarking.md, "Formulas").

Throughput X(N): median ``images_per_s`` of the epochs after the first (the only epoch when there
is one); epoch time T(N) likewise. A group is one system (report/systems.py: runs of different
machines are never mixed) and one model, mode, data backend, task and data set; N0 is the smallest
worker count of a group, so each system scales against its own N0.
Weak scaling (fixed batch per worker): speed-up X(N)/X(N0), E(N) = X(N) / (N/N0 * X(N0)).
Strong scaling (fixed global batch):   speed-up T(N0)/T(N), E(N) = T(N0)*N0 / (T(N)*N).
Several completed runs at the same group and N are combined by the median of their X and T.
"""
from __future__ import annotations

import math
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jeoparda.report.systems import UNKNOWN_SYSTEM, hardware, system_labels, system_name
from jeoparda.training.records import JOBS, Epoch, LogError, RunEnd, RunStart, read_log

#: The jobs whose epochs time training steps (records.JOBS): the runs a scaling report counts.
SCALED_JOBS = ("train", "bench")
#: The job whose epochs time reads (``jeoparda bench io``): the report's I/O section, never scaled.
IO_JOB = "io"


@dataclass
class Run:
    """One results log, read and checked."""

    path: Path
    start: RunStart
    epochs: list[Epoch]
    end: RunEnd | None

    @property
    def status(self) -> str:
        return self.end.status if self.end else "incomplete"

    @property
    def task(self) -> str:
        return self.start.task

    @property
    def dataset(self) -> str:
        return self.start.dataset

    @property
    def group(self) -> tuple[str, str, str, str, str]:
        return self.start.model, self.start.mode, self.start.data_backend, self.task, self.dataset

    @property
    def world_size(self) -> int:
        return int(self.start.world_size)

    @property
    def system(self) -> str:
        return system_name(self.start)

    @property
    def hardware(self) -> str:
        return hardware(self.start)

    @property
    def steady_epochs(self) -> list[Epoch]:
        """The epochs after the first (the only one when there is one): warm-up left out."""
        return self.epochs[1:] or self.epochs

    def steady(self, key: str) -> float:
        return statistics.median(float(getattr(e, key)) for e in self.steady_epochs)

    def final(self, key: str) -> float | None:
        """A metric of run_end (the test split's, else the last validation's); None where absent or
        not a finite number (a damaged line never makes a median NaN)."""
        return finite(self.end.metrics.get(key) if self.end else None)


def finite(value: Any) -> float | None:
    """``value`` as a float where it is a finite number, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_run(path: Path, io: bool = False) -> Run | None:
    """A training run from a run folder or a results.jsonl; None (with a warning naming it) if the
    log is damaged, its job is not one that times training (``jeoparda sr train``; with ``io``, a
    ``jeoparda bench io`` run is taken too), or its figures cannot be divided by (no worker, an
    epoch of no throughput or no time)."""
    try:
        log = read_log(Path(path))
    except LogError as exc:
        warnings.warn(f"{exc.path}: skipped, {exc.why}", stacklevel=2)
        return None
    if log.start.job not in SCALED_JOBS + ((IO_JOB,) if io else ()):
        warnings.warn(f"{log.path}: skipped, a {JOBS.get(log.start.job, log.start.job)}, not a training run "
                      "to scale", stacklevel=2)
        return None
    if log.start.world_size < 1:
        warnings.warn(f"{log.path}: skipped, world_size {log.start.world_size} (a run has at least one worker)",
                      stacklevel=2)
        return None
    if any(not e.images_per_s > 0 or not e.epoch_time_s > 0 for e in log.epochs):
        warnings.warn(f"{log.path}: skipped, an epoch with no throughput or no time (images_per_s and "
                      "epoch_time_s must be above 0)", stacklevel=2)
        return None
    return Run(log.path, log.start, log.epochs, log.end)


@dataclass
class Row:
    model: str
    mode: str
    data_backend: str
    world_size: int
    nodes: int
    global_batch_size: int
    images_per_s: float
    epoch_time_s: float
    speedup: float = 1.0
    efficiency: float = 1.0
    f1_samples: float | None = None
    accuracy: float | None = None
    runs: list[str] = field(default_factory=list)
    task: str = "multilabel"
    dataset: str = ""
    quality_key: str = "f1_samples"
    quality_label: str = "F1 (samples)"
    quality: float | None = None
    target: float | None = None              # the runs' train.target (None: no target set)
    time_to_target_s: float | None = None    # median over the runs that reached it
    target_reached: str = ""                 # "k/n": how many of the runs reached it
    energy_per_image_j: float | None = None  # median over the steady epochs of every run, where measured
    projected_images_per_s: float | None = None
    projected_efficiency: float | None = None
    projection_error: float | None = None  # measured / projected images/s - 1
    system: str = UNKNOWN_SYSTEM             # run_start system, as logged
    hardware: str = ""                       # GPU model, else CPU model (report/systems.py)
    system_label: str = UNKNOWN_SYSTEM       # the system, or "NAME [HARDWARE]" where names collide
    tflops_per_worker: float | None = None   # achieved, median over the steady epochs of every run
    mfu: float | None = None                 # tflops_per_worker / the device's peak, likewise
    bottleneck: str | None = None            # the most common run_end verdict of the runs

    @property
    def images_per_s_per_worker(self) -> float:
        return self.images_per_s / self.world_size


def _energy(members: list[Run]) -> float | None:
    values = [float(e.energy_per_image_j) for r in members for e in r.steady_epochs
              if e.energy_per_image_j is not None]
    return statistics.median(values) if values else None


def epoch_flops(run: Run, epoch: Epoch) -> tuple[float | None, float | None]:
    """Achieved TFLOP/s per worker and MFU of one epoch: as the epoch logged them, else worked out
    from run_start's ``train_flops_per_image`` and ``peak_flops_per_worker`` (None where unknown)."""
    tflops, mfu = finite(epoch.tflops_per_worker), finite(epoch.mfu)
    per_image = finite(run.start.train_flops_per_image)
    if tflops is None and per_image is not None:
        tflops = per_image * float(epoch.images_per_s) / run.world_size / 1e12
    peak = finite(run.start.peak_flops_per_worker)
    if mfu is None and tflops is not None and peak:
        mfu = tflops * 1e12 / peak
    return tflops, mfu


def _flops(members: list[Run]) -> dict[str, Any]:
    pairs = [epoch_flops(r, e) for r in members for e in r.steady_epochs]
    tflops = [t for t, _ in pairs if t is not None]
    mfu = [m for _, m in pairs if m is not None]
    return {"tflops_per_worker": statistics.median(tflops) if tflops else None,
            "mfu": statistics.median(mfu) if mfu else None}


def most_common_bottleneck(members: list[Run]) -> str | None:
    """The verdict most of the runs' run_end gave (the first met among equals); None where none did."""
    verdicts = Counter(r.end.bottleneck for r in members if r.end and r.end.bottleneck)
    return verdicts.most_common(1)[0][0] if verdicts else None


def _time_to_target(members: list[Run]) -> dict[str, Any]:
    goals = [finite(r.end.target.get("value")) if r.end and r.end.target else None for r in members]
    if not any(g is not None for g in goals):
        return {}
    times = [float(r.end.time_to_target_s) for r in members if r.end and r.end.time_to_target_s is not None]
    value = next(g for g in goals if g is not None)
    return {"target": value, "time_to_target_s": statistics.median(times) if times else None,
            "target_reached": f"{len(times)}/{len(members)}"}


def speedup_efficiency(mode: str, n0: int, x0: float, t0: float, n: int, x: float, t: float) -> tuple[float, float]:
    """Speed-up and efficiency at N workers against N0, from throughputs X and epoch times T.

    Strong scaling: T(N0)/T(N) and T(N0)*N0 / (T(N)*N); weak: X(N)/X(N0) and X(N) / (N/N0 * X(N0)).
    Any time proportional to the epoch time (a step time, at a fixed number of steps) does as well.
    """
    if mode == "strong":
        return t0 / t, t0 * n0 / (t * n)
    return x / x0, x / (n / n0 * x0)


def scaling_rows(runs: list[Run]) -> list[Row]:
    """One row per (system, model, mode, data backend, task, data set, world size) over the completed
    runs that timed epochs; a system name that covers several hardware is split (with a warning)."""
    usable = [r for r in runs if r.status == "completed" and r.epochs]
    labels = system_labels((r.system, r.hardware) for r in usable)
    groups: dict[tuple, dict[int, list[Run]]] = {}
    for run in usable:
        group = (labels[(run.system, run.hardware)], *run.group)
        groups.setdefault(group, {}).setdefault(run.world_size, []).append(run)
    rows = []
    for (system_label, model, mode, backend, task, dataset), by_n in sorted(groups.items()):
        n0 = min(by_n)
        cells = {}
        first = next(iter(by_n.values()))[0].start  # the task's quality, as the log names it
        key, label = first.quality_key or "", first.quality_label or first.quality_key or ""
        for n, members in sorted(by_n.items()):
            final = {k: [v for v in (r.final(k) for r in members) if v is not None]
                     for k in ("f1_samples", "accuracy", key)}
            med = {k: statistics.median(v) if v else None for k, v in final.items()}
            cells[n] = Row(model, mode, backend, n, int(members[0].start.nodes),
                           int(members[0].start.global_batch_size),
                           statistics.median(r.steady("images_per_s") for r in members),
                           statistics.median(r.steady("epoch_time_s") for r in members),
                           f1_samples=med["f1_samples"], accuracy=med["accuracy"],
                           runs=[str(r.path) for r in members], task=task, dataset=dataset,
                           quality_key=key, quality_label=label, quality=med[key], **_time_to_target(members),
                           energy_per_image_j=_energy(members), system=members[0].system,
                           hardware=members[0].hardware, system_label=system_label, **_flops(members),
                           bottleneck=most_common_bottleneck(members))
        base = cells[n0]
        for n, row in cells.items():
            row.speedup, row.efficiency = speedup_efficiency(mode, n0, base.images_per_s, base.epoch_time_s,
                                                             n, row.images_per_s, row.epoch_time_s)
            rows.append(row)
    return rows
