"""The training loop: epochs of steps, validation, test, checkpoints, preemption.

It receives the configuration, the cluster environment and a backend; it never asks which
backend or data backend it runs with (docs/architecture.md, house rules 4 and 5). What it reports (results log,
MLPerf log, perf lines, time to target) goes through its :class:`Recorder`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
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
from jeoparda.training.optim import build_optimizer, build_schedule
from jeoparda.training.preempt import EXIT_PREEMPTED, PreemptFlag
from jeoparda.training.recorder import Recorder, Say


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
        self.recorder = Recorder(cfg, env, backend, accel, run_dir, self.say)
        self.energy = EnergyMeter(accel.info, read_cpu=env.local_rank == 0)
        self._steady = False  # collectives wait dist.setup_timeout_s until the first step is done
        # the data set decides the model's input channels and classes (loaders draw no random numbers)
        self.task = run_task(cfg)  # decided once, from the configuration, the model and the data
        self.train_loader = build_loader(cfg, env, "train", accel, self.task)
        self.val_loader = build_loader(cfg, env, "val", accel, self.task) if cfg.train.val_every else None
        self.recorder.staged(self.train_loader.stage_time_s)
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
        record = self.recorder
        record.start(self.task, self.train_loader, self.precision, self.global_batch,
                     resumed_from=[epoch0, step0] if resume else None)
        record.training_starts(self.train_loader, self.val_loader, self.global_batch)
        done = epoch0
        last_val: dict = {}  # the latest validation's scores
        with PreemptFlag() as flag:
            for epoch in range(epoch0, self.cfg.train.epochs):
                record.epoch_start(epoch)
                stats = self.train_epoch(epoch, step0 if epoch == epoch0 else 0, flag)
                record.epoch_stop(epoch, stats)
                if stats["preempted"]:
                    self.save(epoch, stats["next_step"])
                    record.end("preempted", epoch, last_val)
                    # no rank leaves before rank 0 has written: srun --kill-on-bad-exit would end the
                    # step (and rank 0's write) as soon as the first rank exits with EXIT_PREEMPTED
                    self.backend.barrier()
                    self.say(f"preempted by signal {flag.signal}: checkpoint written; exit {EXIT_PREEMPTED}")
                    return EXIT_PREEMPTED
                last_val = self._validate(epoch) or last_val
                record.epoch(epoch, stats, last_val, lr=self.schedule.get_last_lr()[0])
                done = epoch + 1
                every = self.cfg.train.checkpoint_every
                if every and (done % every == 0 or done == self.cfg.train.epochs):
                    self.save(done, 0)
        test = self._test()
        self.backend.average_buffers(self.model)
        replicas = replica_digests(self.backend, self.model)
        record.end("completed", done, last_val, test, replicas)
        if len(set(replicas)) != 1:
            raise JeopardaError(f"model replicas differ across ranks at the end of the run: {replicas}")
        return 0

    def _validate(self, epoch: int) -> dict:
        every = self.cfg.train.val_every
        if not every or (epoch + 1) % every or self.val_loader is None:
            return {}
        self.backend.average_buffers(self.model)
        self.recorder.eval_start(epoch)
        scores = evaluate(self.model, self.val_loader, self.backend, self.task, self.autocast)
        self.recorder.eval_stop(epoch, scores)  # and time to target
        return scores

    def _test(self) -> dict:
        if not self.cfg.train.test:
            return {}
        self.backend.set_timeout(self.cfg.dist.setup_timeout_s)  # building it may stage and verify shards
        loader = build_loader(self.cfg, self.env, "test", self.accel, self.task)
        self.backend.set_timeout(self.cfg.dist.timeout_s)
        self.backend.average_buffers(self.model)
        return evaluate(self.model, loader, self.backend, self.task, self.autocast)
