"""What a training run reports: ``results.jsonl`` (typed records), ``mllog.txt`` (MLPerf's format),
the ``jeoparda-perf:`` lines and time to target. The loop tells it what happened; it writes.

Only rank 0 writes files and lines, but :meth:`Recorder.start` is collective (it gathers every
rank's placement), so every rank calls it.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.cluster.session import root_decides
from jeoparda.cluster.system import identify, system_name
from jeoparda.config import RunConfig, to_dict
from jeoparda.device_peaks import peak
from jeoparda.loaders.base import Loader
from jeoparda.models.complexity import training_flops
from jeoparda.safe_files import refuse_link
from jeoparda.sentinel2 import TARGET_SIZE
from jeoparda.tasks import Task
from jeoparda.training.bottleneck import split, verdict
from jeoparda.training.mllog import MLLOG_NAME, MLLog
from jeoparda.training.optim import base_lr
from jeoparda.training.records import Epoch, Record, RunEnd, RunStart
from jeoparda.training.results import RESULTS_NAME, ResultsLog, git_sha, versions

Say = Callable[[str], None]
EPOCH_FIELDS = ("epoch_time_s", "train_images", "images_per_s", "data_wait_s", "loss", "energy_j",
                "energy_per_image_j", "energy_sources")


def perf_line(kind: str, **fields: Any) -> str:
    """One stable line for regression harnesses (ReFrame, JUBE): ``jeoparda-perf: KIND k=v ...``,
    floats with 4 decimals; docs/benchmarking.md gives the regular expressions."""
    text = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
    return f"jeoparda-perf: {kind} {text}"


def _or_na(value: float | None) -> float | str:
    """A perf-line figure, or n/a where it is unknown."""
    return "n/a" if value is None else float(value)


def compute_line(figures: dict[str, Any], found: dict[str, Any]) -> str:
    """The perf line of achieved TFLOP/s per worker and MFU (``figures``: :meth:`Recorder.compute_figures`)
    and the step split in seconds per step with its verdict (``found``: :meth:`Recorder.step_verdict`)."""
    parts = found["step_split"]
    return perf_line("compute", tflops_per_worker=_or_na(figures.get("tflops_per_worker")),
                     mfu=_or_na(figures.get("mfu")), data_wait=_or_na(parts["data_wait_s"]),
                     compute=_or_na(parts["compute_s"]), communication=_or_na(parts["communication_s"]),
                     bottleneck=found["bottleneck"])


def _refuse_links(run_dir: Path) -> None:
    for name in (RESULTS_NAME, MLLOG_NAME):
        refuse_link(run_dir / name)


class Recorder:
    def __init__(self, cfg: RunConfig, env: ClusterEnv, backend: Backend, accel: Accelerator, run_dir: Path,
                 say: Say) -> None:
        """Opens mllog.txt: init_start, the submission keys, staging_start. ``say`` prints on rank 0 only."""
        self.cfg, self.env, self.backend, self.accel, self.run_dir = cfg, env, backend, accel, Path(run_dir)
        self.say = say
        # a link planted at a log is refused on every rank at once (rank 0 alone would leave the others waiting)
        root_decides(backend, partial(_refuse_links, self.run_dir))
        # a system name unsafe in a file name stops the run now, not after staging (start() records it)
        root_decides(backend, partial(system_name, cfg.system.name, env))
        self.results = ResultsLog(run_dir, enabled=backend.rank == 0)
        self.mllog = MLLog(run_dir, enabled=backend.rank == 0)
        self.mllog.event("cache_clear", False)  # jeoparda does not drop the page cache; staging is apart
        self.mllog.start("init_start")
        sub = cfg.mlperf
        for key, value in (("submission_benchmark", f"jeoparda-{cfg.model}"), ("submission_org", sub.org),
                           ("submission_division", sub.division), ("submission_status", sub.status),
                           ("submission_platform", sub.platform or accel.name)):
            self.mllog.event(key, value)
        self.mllog.start("staging_start")
        self.task: Task | None = None
        self.target_reached: dict[str, Any] | None = None
        self.energy_total = 0.0
        self._rates: list[tuple[float, float]] = []  # (images/s, epoch time) of the epochs logged
        self._steps: list[tuple[float, float]] = []  # (seconds per step, data wait per step) of the epochs logged
        self.flops_per_image: float | None = None  # of one training step (forward and backward)
        self.peak_flops: float | None = None  # dense peak of one worker's device at the run's precision
        self._clock = time.perf_counter()

    @property
    def _task(self) -> Task:
        if self.task is None:
            raise RuntimeError("Recorder.start() names the task before anything is recorded of it")
        return self.task

    def write(self, record: Record) -> None:
        """One record into results.jsonl (rank 0)."""
        self.results.write(record)

    def staged(self, seconds: float) -> None:
        self.mllog.end("staging_stop", metadata={"staging_seconds": seconds})

    def start(self, task: Task, loader: Loader, precision: str, global_batch: int,
              resumed_from: list[int] | None = None, job: str = "train") -> None:
        """run_start: the set-up of this attempt (collective: gathers every rank's placement); ``job``
        names the command (records.JOBS)."""
        self.task = task
        env, cfg = self.env, self.cfg
        ranks = self.backend.gather_objects({"rank": env.rank, "local_rank": env.local_rank,
                                             "local_size": env.local_size, "nodes": env.nodes,
                                             "launcher": env.launcher, "host": env.hostname,
                                             "gpu": self.accel.info.uuid if self.accel.info else None})
        hosts = sorted({r["host"] for r in ranks})
        gpus = env.local_size if self.accel.gpu else 0  # the ranks on this node, one GPU each
        # rank 0's name and description for every rank (JEOPARDA_SYSTEM may be set on rank 0's shell only)
        self.system: tuple[str, dict[str, Any]] = root_decides(self.backend, partial(
            identify, cfg.system.name, env, self.accel.info, gpus, len(hosts), cfg.data.path))
        self.write(RunStart(
            system=self.system[0], system_info=self.system[1],
            job=job, run_id=self.run_dir.name, model=cfg.model, task=task.name, quality_key=task.quality_key,
            quality_label=task.quality_label, dataset=loader.dataset, bands=loader.band_names,
            classes=loader.class_names, precision=precision, backend=self.backend.name,
            data_backend=cfg.data.backend, world_size=self.backend.world_size, nodes=len(hosts),
            # not device_count(): it is 1 under --gpus-per-task=1
            gpus_per_node=gpus, device=self.accel.kind,
            device_name=self.accel.name, batch_size_per_worker=cfg.train.batch_size, global_batch_size=global_batch,
            mode="weak" if cfg.train.global_batch_size == 0 else "strong", config=to_dict(cfg), versions=versions(),
            git_sha=git_sha(), hosts=hosts, steps_per_epoch=loader.steps_per_epoch, stage_time_s=loader.stage_time_s,
            resumed_from=resumed_from, ranks=ranks, **self._compute_fields(loader, precision)))

    def _compute_fields(self, loader: Loader, precision: str) -> dict[str, Any]:
        """run_start's FLOPs of a training step per image (the model zoo's counter at the run's
        input: channels, classes, image side after data.resize) and the device's dense peak at the
        precision its convolutions run in (docs/benchmarking.md, "Achieved FLOP/s and MFU"). Rank 0
        alone counts: the others write nothing."""
        if self.backend.rank != 0:
            return {}
        src = loader.source
        side = self.cfg.data.resize or (src.layout.size if src is not None else (TARGET_SIZE, TARGET_SIZE))
        try:
            self.flops_per_image = training_flops(self.cfg.model, loader.channels, loader.num_classes, side)
        except Exception as exc:  # a model the counter cannot run (meta device): n/a, never a lone rank's failure
            self.flops_per_image = None
            return {"peak_source": f"FLOPs not counted ({type(exc).__name__}: {exc}); TFLOP/s and MFU n/a"[:500]}
        if self.accel.gpu:  # float32 convolutions go through TF32 while cuDNN allows it (its default)
            self.peak_flops, source = peak(self.accel.name, precision, tf32=self.accel.tf32_convolutions())
        else:
            self.peak_flops, source = None, f"cpu ({self.accel.name}): no peak table for CPUs, MFU n/a"
        return {"train_flops_per_image": self.flops_per_image, "peak_flops_per_worker": self.peak_flops,
                "peak_source": source}

    def compute_figures(self, images_per_s: float) -> dict[str, Any]:
        """Achieved TFLOP/s per worker and MFU at ``images_per_s`` (all workers): an epoch's fields."""
        if self.flops_per_image is None:
            return {}
        tflops = self.flops_per_image * images_per_s / self.backend.world_size / 1e12
        return {"tflops_per_worker": tflops, "mfu": tflops * 1e12 / self.peak_flops if self.peak_flops else None}

    def training_starts(self, train: Loader, val: Loader | None, global_batch: int) -> None:
        """mllog's init_stop, the run's parameters as MLPerf names them and run_start; the clock of
        time to target and of the total time starts here."""
        cfg, log = self.cfg.train, self.mllog
        log.end("init_stop")
        val_sizes = val.src.sizes if val is not None and val.source else [0]
        train_sizes = train.src.sizes if train.source else [0]
        for key, value in (("number_of_nodes", self.env.nodes),
                           ("accelerators_per_node", self.env.local_size if self.accel.gpu else 0),
                           ("seed", cfg.seed), ("global_batch_size", global_batch),
                           ("train_samples", int(sum(train_sizes))), ("eval_samples", int(sum(val_sizes))),
                           ("opt_name", cfg.optimizer), ("opt_base_learning_rate", base_lr(cfg, global_batch)),
                           ("opt_weight_decay", cfg.weight_decay), ("opt_learning_rate_schedule", cfg.schedule),
                           ("opt_learning_rate_warmup_epochs", cfg.warmup_epochs)):
            log.event(key, value)
        log.start("run_start")
        self._clock = time.perf_counter()

    def epoch_start(self, epoch: int) -> None:
        self.mllog.start("epoch_start", metadata={"epoch_num": epoch + 1})

    def epoch_stop(self, epoch: int, stats: dict[str, Any]) -> None:
        self.mllog.end("epoch_stop", metadata={"epoch_num": epoch + 1})
        if stats.get("energy_j") is not None:  # MLPerf power: energy of the interval, all ranks
            self.mllog.event("energy_j", stats["energy_j"],
                             metadata={"epoch_num": epoch + 1, "sources": stats["energy_sources"]})

    def eval_start(self, epoch: int) -> None:
        self.mllog.start("eval_start", metadata={"epoch_num": epoch + 1})

    def eval_stop(self, epoch: int, scores: dict[str, Any]) -> None:
        """The validation's end and quality; time to target when this is the first to reach it.

        Time to quality is counted like MLPerf's time to train: from the start of training (after
        set-up and staging, which run_start reports apart) to the end of the first validation that
        reaches train.target in the task's quality metric."""
        key, target = self._task.quality_key, self.cfg.train.target
        self.mllog.end("eval_stop", metadata={"epoch_num": epoch + 1})
        self.mllog.event("eval_accuracy", scores[key], metadata={"epoch_num": epoch + 1, "metric": key})
        if target and self.target_reached is None and scores[key] >= target:
            self.target_reached = {"time_to_target_s": time.perf_counter() - self._clock, "target_epoch": epoch + 1}
            self.say(f"target {key} >= {target} reached at epoch {epoch + 1} after "
                     f"{self.target_reached['time_to_target_s']:.1f} s")

    def epoch(self, epoch: int, stats: dict[str, Any], val: dict[str, Any], lr: float) -> None:
        """The epoch's record, its line and its perf line; ``val``: the latest validation's scores."""
        task = self._task
        fields = {k: stats[k] for k in EPOCH_FIELDS if k in stats}
        if stats.get("energy_note"):
            fields["energy_note"] = stats["energy_note"]
        if stats.get("energy_j") is not None:
            self.energy_total += stats["energy_j"]
        hit = self.target_reached
        reached = hit if hit and hit["target_epoch"] == epoch + 1 else {}
        self.write(Epoch(epoch=epoch + 1, **fields, lr=lr, **reached, **self.compute_figures(stats["images_per_s"]),
                         metrics=dict(val)))
        scores = f"  {task.summary(val)}" if val else ""
        self.say(f"epoch {epoch + 1}/{self.cfg.train.epochs}  loss {stats['loss']:.4f}  "
                 f"{stats['images_per_s']:.1f} img/s  {stats['epoch_time_s']:.1f} s  "
                 f"data wait {stats['data_wait_s']:.2f} s{scores}")
        self.say(perf_line("epoch", epoch=epoch + 1, images_per_s=stats["images_per_s"],
                           epoch_time_s=stats["epoch_time_s"], data_wait_s=stats["data_wait_s"],
                           **({task.quality_key: val[task.quality_key]} if val else {})))
        self._rates.append((stats["images_per_s"], stats["epoch_time_s"]))
        if stats.get("steps"):
            self._steps.append((stats["epoch_time_s"] / stats["steps"], stats["data_wait_s"] / stats["steps"]))

    def step_verdict(self, step_s: float, data_wait_s: float, compute_s: float | None) -> dict[str, Any]:
        """run_end's step split and bottleneck verdict (training/bottleneck.py). On one worker
        nothing is communicated: compute is the step less the data wait, whatever was measured."""
        world = self.backend.world_size
        if world == 1:  # a separately timed no-sync block would only add the noise between blocks
            compute_s = max(0.0, step_s - data_wait_s)
        parts = split(step_s, data_wait_s, compute_s)
        key, note = verdict(parts, world)
        return {"step_split": parts, "bottleneck": key, "bottleneck_note": note}

    def end(self, status: str, epochs: int, val: dict[str, Any], test: dict[str, Any] | None = None,
            replicas: list[str] | None = None) -> None:
        """run_end, mllog's run_stop and the run's perf lines."""
        key, target = self._task.quality_key, self.cfg.train.target
        steady = self._rates[1:] or self._rates  # the first epoch is warm-up, as in the report
        if steady:
            self.say(perf_line("run", status=status, images_per_s=statistics.median(r for r, _ in steady),
                               epoch_time_s=statistics.median(t for _, t in steady)))
        steps = self._steps[1:] or self._steps
        found = self.step_verdict(statistics.median(s for s, _ in steps), statistics.median(w for _, w in steps),
                                  None) if steps else {}
        hit = self.target_reached or {}
        if target:
            self.say(perf_line("target", metric=key, value=float(target), reached="yes" if hit else "no",
                               time_to_target_s=hit.get("time_to_target_s", -1.0)))
        if found:
            self.say(f"bottleneck: {found['bottleneck_note']}")
            self.say(compute_line(self.compute_figures(statistics.median(r for r, _ in steady)), found))
        success = status == "completed" and (not target or bool(hit))
        self.mllog.end("run_stop", metadata={"status": "success" if success else "aborted", "jeoparda_status": status})
        self.write(RunEnd(total_time_s=time.perf_counter() - self._clock, epochs=epochs, status=status,
                          energy_j=self.energy_total or None, val=val, test=test or {}, replica_sha256=replicas,
                          target={"metric": key, "value": target} if target else None,
                          time_to_target_s=hit.get("time_to_target_s"), target_epoch=hit.get("target_epoch"),
                          **found, metrics=dict(test or val)))
