"""The training loop: epochs of steps, validation, test, checkpoints, preemption, results log.

It receives the configuration, the cluster environment and a backend; it never asks which
backend or data backend it runs with (DESIGN.md rules 4 and 5).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.cluster.session import replica_digests
from jeoparda.config import RunConfig, to_dict
from jeoparda.devices import amp_precision, rng_states, set_rng_states
from jeoparda.errors import JeopardaError
from jeoparda.loaders.build import build_loader, run_task
from jeoparda.models import create_model
from jeoparda.training import checkpoint
from jeoparda.training.energy import EnergyMeter
from jeoparda.training.energy import combine as combine_energy
from jeoparda.training.evaluate import evaluate
from jeoparda.training.mllog import MLLog
from jeoparda.training.optim import base_lr, build_optimizer, build_schedule
from jeoparda.training.preempt import EXIT_PREEMPTED, PreemptFlag
from jeoparda.training.results import ResultsLog, git_sha, versions

Say = Callable[[str], None]


def per_worker_batch(cfg: RunConfig, world: int) -> tuple[int, str]:
    """The per-worker batch and, where a rule had to be applied, a line saying so.

    train.batch_size when no global batch is set. Otherwise train.global_batch_size / world size;
    where that does not divide, the per-worker batch is rounded to the nearest integer (at least 1),
    so the global batch becomes per-worker x world size, close to the recipe's (BWMS's 500 on 8
    workers: 62 each, 496 in all)."""
    g = cfg.train.global_batch_size
    if g == 0:
        return cfg.train.batch_size, ""
    per = max(1, round(g / world))
    if per * world == g:
        return per, ""
    return per, (f"train.global_batch_size {g} does not divide by {world} workers: {per} per worker, "
                 f"global batch {per * world}")


def auto_threads(env: ClusterEnv) -> int:
    """The cores this process may use shared by the node's ranks, at most Slurm's CPUs per task."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // env.local_size)
    return min(share, env.cpus_per_task) if env.cpus_per_task > 0 else share


def configure_threads(cfg: RunConfig, env: ClusterEnv, accel: Accelerator) -> None:
    """Determinism, cuDNN autotuning and CPU threads per rank: train.threads, else
    :func:`auto_threads` (1 in deterministic mode) where the model computes on the CPU."""
    accel.configure(cfg.train.deterministic)
    if accel.device.type == "cpu":
        torch.set_num_threads(cfg.train.threads or (1 if cfg.train.deterministic else auto_threads(env)))


def compile_backend(name: str) -> Any:
    """The torch.compile backend called ``name``; an unknown name is one line listing the known ones."""
    from torch._dynamo.backends.registry import lookup_backend
    from torch._dynamo.exc import InvalidBackend

    try:
        return lookup_backend(name)
    except InvalidBackend:
        import torch._dynamo

        known = ", ".join(torch._dynamo.list_backends(exclude_tags=()))
        raise JeopardaError(f"train.compile={name}: not a torch.compile backend (known: {known})") from None


def use_channels_last(cfg: RunConfig, accel: Accelerator, backend: Backend) -> tuple[bool, str]:
    """channels_last on GPU as configured, unless the backend's collectives refuse the
    non-contiguous parameters it makes (Horovod); then off, with a line saying why."""
    wanted = accel.gpu and cfg.train.channels_last
    if wanted and not backend.supports_channels_last:
        return False, (f"train.channels_last is off with dist.backend={backend.name} (its collectives refuse "
                       "the non-contiguous parameters channels_last makes)")
    return wanted, ""


def perf_line(kind: str, **fields: Any) -> str:
    """One stable line for regression harnesses (ReFrame, JUBE): ``jeoparda-perf: KIND k=v ...``,
    floats with 4 decimals; docs/benchmarking.md gives the regular expressions."""
    text = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
    return f"jeoparda-perf: {kind} {text}"


class Trainer:
    def __init__(self, cfg: RunConfig, env: ClusterEnv, backend: Backend, accel: Accelerator,
                 run_dir: Path, say: Say) -> None:
        batch, note = per_worker_batch(cfg, backend.world_size)
        self.cfg = cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch))
        self.env, self.backend, self.accel, self.run_dir = env, backend, accel, Path(run_dir)
        self.device = device = accel.device
        self.say = say if backend.rank == 0 else (lambda text: None)
        if note:
            self.say(f"note: {note}")
        self.log = ResultsLog(run_dir, enabled=backend.rank == 0)
        self.mllog = MLLog(run_dir, enabled=backend.rank == 0)
        self.mllog.event("cache_clear", False)  # jeoparda does not drop the page cache; staging is apart
        self.mllog.start("init_start")
        sub = cfg.mlperf
        for key, value in (("submission_benchmark", f"jeoparda-{cfg.model}"), ("submission_org", sub.org),
                           ("submission_division", sub.division), ("submission_status", sub.status),
                           ("submission_platform", sub.platform or accel.name)):
            self.mllog.event(key, value)
        self.mllog.start("staging_start")
        self._rates: list[tuple[float, float]] = []  # (images/s, epoch time) of this process's epochs
        self.target_reached: dict[str, Any] | None = None
        self.energy = EnergyMeter(accel.info, read_cpu=env.local_rank == 0)
        self.energy_total = 0.0
        self._steady = False  # collectives wait dist.setup_timeout_s until the first step is done
        # the data set decides the model's input channels and classes (loaders draw no random numbers)
        self.task = run_task(cfg)  # decided once, from the configuration, the model and the data
        self.train_loader = build_loader(cfg, env, "train", accel, self.task)
        self.val_loader = build_loader(cfg, env, "val", accel, self.task) if cfg.train.val_every else None
        self.mllog.end("staging_stop", metadata={"staging_seconds": self.train_loader.stage_time_s})
        torch.manual_seed(cfg.train.seed)  # same initial weights on every rank
        self.model = create_model(cfg.model, in_chans=self.train_loader.channels,
                                  num_classes=self.train_loader.num_classes).to(device)
        self.channels_last, why = use_channels_last(cfg, accel, backend)
        if why:
            self.say(f"note: {why}")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        torch.manual_seed(cfg.train.seed + 1000 * (backend.rank + 1))  # per-rank dropout streams
        self.global_batch = batch * backend.world_size
        self.net = backend.wrap_model(self.model)
        if cfg.train.compile:
            self.net = torch.compile(self.net, backend=compile_backend(cfg.train.compile),  # type: ignore[assignment]
                                     mode=cfg.train.compile_mode or None)
        self.optimizer = backend.wrap_optimizer(build_optimizer(cfg.train, self.model, self.global_batch), self.model)
        # the schedule watches the optimiser the loop steps (Horovod's wrapper is a new object)
        self.schedule = build_schedule(cfg.train, self.optimizer, self.train_loader.steps_per_epoch)
        self.precision = amp_precision(cfg.train.precision, accel)
        half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.autocast: dict[str, Any] = {"device_type": device.type, "dtype": half or torch.float32,
                                         "enabled": accel.gpu and half is not None}
        self.scaler = torch.amp.GradScaler(device.type, enabled=accel.gpu and self.precision == "fp16")

    def step(self, batch: dict, sync_gradients: bool = True) -> torch.Tensor:
        """One training step on ``batch``; returns the loss (detached). Without
        ``sync_gradients`` the backward pass does not communicate and the optimiser does not step
        (to time compute alone; the backend may offer no such switch, then it communicates)."""
        context = None if sync_gradients else self.backend.without_gradient_sync(self.net)
        with context if context is not None else contextlib.nullcontext():
            image = batch["image"]
            if self.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            with torch.autocast(**self.autocast):
                logits = self.net(image)
            loss = self.task.loss(logits.float(), batch["label"])
            self.optimizer.zero_grad()  # set_to_none by default; Horovod takes no arguments
            self.scaler.scale(loss).backward()
        if sync_gradients:
            self.backend.optimizer_step(self.optimizer, self.scaler)
        return loss.detach()

    def train_epoch(self, epoch: int, start_step: int, flag: PreemptFlag) -> dict:
        """One epoch from ``start_step``; stops early (preempted) when any rank got the signal."""
        loader = self.train_loader
        loader.set_epoch(epoch, start_step)
        self.net.train()
        self.accel.synchronize()
        self.energy.start()
        start = time.perf_counter()
        wait, steps, loss_sum = 0.0, 0, torch.zeros((), device=self.device)
        stop = torch.zeros((), device=self.device)
        batches = iter(loader)
        for step in range(start_step, loader.steps_per_epoch):
            t0 = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - t0
            loss_sum += self.step(batch)
            if not self._steady:  # set-up ends with the first step (compilation, cuDNN autotuning)
                self.backend.set_timeout(self.cfg.dist.timeout_s)
                self._steady = True
            self.schedule.step()
            steps += 1
            cap = self.cfg.train.max_steps
            last = step + 1 == loader.steps_per_epoch or (cap > 0 and steps >= cap)
            # Whether any rank got a preemption signal costs a collective and a host sync: asked
            # every preempt_check_every steps and at the end of the epoch, not every step.
            if last or steps % self.cfg.train.preempt_check_every == 0:
                stop.fill_(float(flag.raised))
                if self.backend.all_reduce(stop, op="max").item() > 0:
                    return {"preempted": True, "next_step": step + 1}
            if last:
                break
        self.accel.synchronize()
        elapsed = time.perf_counter() - start
        reading = self.energy.stop()
        world = self.backend.world_size
        loss_mean = float(self.backend.all_reduce(loss_sum.clone()).item()) / max(steps * world, 1)
        images = steps * self.cfg.train.batch_size * world
        energy = combine_energy(self.backend.gather_objects(reading), images)
        return {"preempted": False, "epoch_time_s": elapsed, "train_images": images,
                "images_per_s": images / elapsed, "data_wait_s": wait, "loss": loss_mean, "steps": steps, **energy}

    def save(self, epoch: int, step: int) -> None:
        """Checkpoint (rank 0 writes; every rank contributes its random state)."""
        self.backend.average_buffers(self.model)
        rng = self.backend.gather_objects(rng_states(self.accel))
        if self.backend.rank != 0:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                 "epoch": epoch, "step": step, "world_size": self.backend.world_size, "rng": rng,
                 "config": to_dict(self.cfg)}
        checkpoint.save(self.run_dir, state, epoch, step, self.cfg.train.keep_checkpoints)

    def restore(self) -> tuple[int, int]:
        path = checkpoint.newest(self.run_dir)
        if path is None:
            raise JeopardaError(f"{self.run_dir}: --resume but no checkpoint in "
                                f"{checkpoint.checkpoint_dir(self.run_dir)}")
        state = checkpoint.load(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        if state["world_size"] == self.backend.world_size:
            set_rng_states(state["rng"][self.backend.rank], self.accel)
        self.say(f"resumed from {path} (epoch {state['epoch'] + 1}, step {state['step']})")
        return state["epoch"], state["step"]

    def run(self, resume: bool) -> int:
        epoch0, step0 = self.restore() if resume else (0, 0)
        self.backend.sync_initial_state(self.model, self.optimizer)
        self._log_start(resumed_from=[epoch0, step0] if resume else None)
        self._mllog_start()
        start, done = time.perf_counter(), epoch0
        last_val: dict = {}
        with PreemptFlag() as flag:
            for epoch in range(epoch0, self.cfg.train.epochs):
                self.mllog.start("epoch_start", metadata={"epoch_num": epoch + 1})
                stats = self.train_epoch(epoch, step0 if epoch == epoch0 else 0, flag)
                self.mllog.end("epoch_stop", metadata={"epoch_num": epoch + 1})
                if stats.get("energy_j") is not None:  # MLPerf power: energy of the interval, all ranks
                    self.mllog.event("energy_j", stats["energy_j"],
                                     metadata={"epoch_num": epoch + 1, "sources": stats["energy_sources"]})
                if stats["preempted"]:
                    self.save(epoch, stats["next_step"])
                    self._log_end(start, epoch, "preempted", last_val)
                    # no rank leaves before rank 0 has written: srun --kill-on-bad-exit would end the
                    # step (and rank 0's write) as soon as the first rank exits with EXIT_PREEMPTED
                    self.backend.barrier()
                    self.say(f"preempted by signal {flag.signal}: checkpoint written; exit {EXIT_PREEMPTED}")
                    return EXIT_PREEMPTED
                fresh = self._validate(epoch)
                last_val = fresh or last_val
                self._check_target(epoch, fresh, start)
                self._log_epoch(epoch, stats, last_val)
                done = epoch + 1
                every = self.cfg.train.checkpoint_every
                if every and (done % every == 0 or done == self.cfg.train.epochs):
                    self.save(done, 0)
        test = self._test()
        self.backend.average_buffers(self.model)
        replicas = replica_digests(self.backend, self.model)
        self._log_end(start, done, "completed", last_val, test, replicas)
        if len(set(replicas)) != 1:
            raise JeopardaError(f"model replicas differ across ranks at the end of the run: {replicas}")
        return 0

    def _mllog_start(self) -> None:
        """init_stop, the run's parameters as MLPerf names them, run_start."""
        cfg, log = self.cfg.train, self.mllog
        log.end("init_stop")
        val = self.val_loader.src.sizes if self.val_loader is not None and self.val_loader.source else [0]
        train = self.train_loader.src.sizes if self.train_loader.source else [0]
        for key, value in (("number_of_nodes", self.env.nodes),
                           ("accelerators_per_node", self.env.local_size if self.accel.gpu else 0),
                           ("seed", cfg.seed), ("global_batch_size", self.global_batch),
                           ("train_samples", int(sum(train))), ("eval_samples", int(sum(val))),
                           ("opt_name", cfg.optimizer), ("opt_base_learning_rate", base_lr(cfg, self.global_batch)),
                           ("opt_weight_decay", cfg.weight_decay), ("opt_learning_rate_schedule", cfg.schedule),
                           ("opt_learning_rate_warmup_epochs", cfg.warmup_epochs)):
            log.event(key, value)
        log.start("run_start")

    def _check_target(self, epoch: int, val: dict, start: float) -> None:
        """Time to quality, counted like MLPerf's time to train: from the start of training (after
        set-up and staging, which run_start reports apart) to the end of the first validation that
        reaches train.target in the task's quality metric."""
        target = self.cfg.train.target
        if not target or not val or self.target_reached is not None:
            return
        if val[self.task.quality_key] >= target:
            self.target_reached = {"time_to_target_s": time.perf_counter() - start, "target_epoch": epoch + 1}
            self.say(f"target {self.task.quality_key} >= {target} reached at epoch {epoch + 1} after "
                     f"{self.target_reached['time_to_target_s']:.1f} s")

    def _validate(self, epoch: int) -> dict:
        every = self.cfg.train.val_every
        if not every or (epoch + 1) % every or self.val_loader is None:
            return {}
        self.backend.average_buffers(self.model)
        self.mllog.start("eval_start", metadata={"epoch_num": epoch + 1})
        scores = evaluate(self.model, self.val_loader, self.backend, self.task, self.autocast)
        self.mllog.end("eval_stop", metadata={"epoch_num": epoch + 1})
        self.mllog.event("eval_accuracy", scores[self.task.quality_key],
                         metadata={"epoch_num": epoch + 1, "metric": self.task.quality_key})
        return scores

    def _test(self) -> dict:
        if not self.cfg.train.test:
            return {}
        self.backend.set_timeout(self.cfg.dist.setup_timeout_s)  # building it may stage and verify shards
        loader = build_loader(self.cfg, self.env, "test", self.accel, self.task)
        self.backend.set_timeout(self.cfg.dist.timeout_s)
        self.backend.average_buffers(self.model)
        return evaluate(self.model, loader, self.backend, self.task, self.autocast)

    def _log_start(self, resumed_from: list[int] | None) -> None:
        ranks = self.backend.gather_objects({"rank": self.env.rank, "local_rank": self.env.local_rank,
                                             "local_size": self.env.local_size, "nodes": self.env.nodes,
                                             "launcher": self.env.launcher, "host": self.env.hostname,
                                             "gpu": self.accel.info.uuid if self.accel.info else None})
        hosts = sorted({r["host"] for r in ranks})
        # the ranks on this node, one GPU each (device_count() is 1 under --gpus-per-task=1)
        gpus = self.env.local_size if self.accel.gpu else 0
        self.log.write("run_start", run_id=self.run_dir.name, model=self.cfg.model, task=self.task.name,
                       dataset=self.train_loader.dataset, bands=self.train_loader.band_names,
                       classes=self.train_loader.class_names, precision=self.precision,
                       backend=self.backend.name,
                       data_backend=self.cfg.data.backend, world_size=self.backend.world_size,
                       nodes=len(hosts), gpus_per_node=gpus, device=self.accel.kind,
                       device_name=self.accel.name,
                       batch_size_per_worker=self.cfg.train.batch_size, global_batch_size=self.global_batch,
                       mode="weak" if self.cfg.train.global_batch_size == 0 else "strong",
                       config=to_dict(self.cfg), versions=versions(), git_sha=git_sha(), hosts=hosts,
                       steps_per_epoch=self.train_loader.steps_per_epoch,
                       stage_time_s=self.train_loader.stage_time_s, resumed_from=resumed_from, ranks=ranks)

    def _log_epoch(self, epoch: int, stats: dict, val: dict) -> None:
        fields = {k: stats[k] for k in ("epoch_time_s", "train_images", "images_per_s", "data_wait_s", "loss",
                                        "energy_j", "energy_per_image_j", "energy_sources") if k in stats}
        if stats.get("energy_note"):
            fields["energy_note"] = stats["energy_note"]
        if stats.get("energy_j") is not None:
            self.energy_total += stats["energy_j"]
        hit = self.target_reached
        reached = hit if hit and hit["target_epoch"] == epoch + 1 else {}
        self.log.write("epoch", epoch=epoch + 1, **fields, **val, lr=self.schedule.get_last_lr()[0], **reached)
        f1 = f"  {self.task.summary(val)}" if val else ""
        self.say(f"epoch {epoch + 1}/{self.cfg.train.epochs}  loss {stats['loss']:.4f}  "
                 f"{stats['images_per_s']:.1f} img/s  {stats['epoch_time_s']:.1f} s  "
                 f"data wait {stats['data_wait_s']:.2f} s{f1}")
        self.say(perf_line("epoch", epoch=epoch + 1, images_per_s=stats["images_per_s"],
                           epoch_time_s=stats["epoch_time_s"], data_wait_s=stats["data_wait_s"],
                           **({self.task.quality_key: val[self.task.quality_key]} if val else {})))
        self._rates.append((stats["images_per_s"], stats["epoch_time_s"]))

    def _log_end(self, start: float, epochs: int, status: str, val: dict, test: dict | None = None,
                 replicas: list[str] | None = None) -> None:
        steady = self._rates[1:] or self._rates  # the first epoch is warm-up, as in the report
        if steady:
            self.say(perf_line("run", status=status, images_per_s=statistics.median(r for r, _ in steady),
                               epoch_time_s=statistics.median(t for _, t in steady)))
        if self.cfg.train.target:
            hit = self.target_reached or {}
            self.say(perf_line("target", metric=self.task.quality_key, value=float(self.cfg.train.target),
                               reached="yes" if hit else "no", time_to_target_s=hit.get("time_to_target_s", -1.0)))
        success = status == "completed" and (not self.cfg.train.target or self.target_reached is not None)
        self.mllog.end("run_stop", metadata={"status": "success" if success else "aborted", "jeoparda_status": status})
        goal = {"metric": self.task.quality_key, "value": self.cfg.train.target} if self.cfg.train.target else None
        target = {"target": goal, "time_to_target_s": None, "target_epoch": None, **(self.target_reached or {})}
        self.log.write("run_end", total_time_s=time.perf_counter() - start, epochs=epochs, status=status,
                       energy_j=self.energy_total or None,
                       val=val, test=test or {}, replica_sha256=replicas, **target, **(test or val))
