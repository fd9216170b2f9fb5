"""The training loop: epochs of steps, validation, test, checkpoints, preemption.

It receives the configuration, the cluster environment and a backend; it never asks which
backend or data backend it runs with (docs/architecture.md, house rules 4 and 5). What it reports (results log,
MLPerf log, perf lines, time to target) goes through its :class:`Recorder`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.cluster.session import replica_digests, root_decides
from jeoparda.config import RunConfig, to_dict
from jeoparda.devices import amp_precision, rng_states, set_rng_states
from jeoparda.errors import JeopardaError
from jeoparda.loaders.base import Loader
from jeoparda.loaders.build import build_loader, run_task
from jeoparda.models import create_model
from jeoparda.training import checkpoint
from jeoparda.training.energy import EnergyMeter
from jeoparda.training.energy import combine as combine_energy
from jeoparda.training.evaluate import evaluate
from jeoparda.training.optim import build_optimizer, build_schedule
from jeoparda.training.preempt import EXIT_PREEMPTED, Preempted, PreemptFlag, check_in_setup, signal_name, watch
from jeoparda.training.recorder import Recorder, Say
from jeoparda.training.run_folder import write_run_config
from jeoparda.training.setup import compile_backend, per_worker_batch, use_channels_last

PREEMPT, FAILED = 1.0, 2.0  # what a poll of the ranks answers (the largest of all ranks' answers)


class NonFiniteLoss(JeopardaError):
    """The training loss became NaN or infinite: the run stops with status failed."""


class Trainer:
    def __init__(self, cfg: RunConfig, env: ClusterEnv, backend: Backend, accel: Accelerator,
                 run_dir: Path, say: Say, flag: PreemptFlag | None = None) -> None:
        batch, note = per_worker_batch(cfg, backend.world_size)
        self.cfg = cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch))
        self.env, self.backend, self.accel, self.run_dir = env, backend, accel, Path(run_dir)
        self.device = device = accel.device
        self.say = say if backend.rank == 0 else (lambda text: None)
        if note:
            self.say(f"note: {note}")
        self.flag = flag or PreemptFlag()  # the command's; :meth:`run` installs it where nobody has
        self.recorder = Recorder(cfg, env, backend, accel, run_dir, self.say)
        self.energy = EnergyMeter(accel.info, read_cpu=env.local_rank == 0)
        self._steady = False  # collectives wait dist.setup_timeout_s until the first step is done
        # the data set decides the model's input channels and classes (loaders draw no random numbers)
        self.task = run_task(cfg)  # decided once, from the configuration, the model and the data
        self.flag.phase = "staging" if cfg.data.stage else "set-up"
        self.train_loader = build_loader(cfg, env, "train", accel, self.task)
        self.val_loader = build_loader(cfg, env, "val", accel, self.task) if cfg.train.val_every else None
        self.flag.phase = "set-up"
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
        self._own: dict[str, torch.Tensor] | None = None  # this rank's buffers from a mid-epoch checkpoint
        self._saved: tuple[int, int] | None = None  # (epoch, step) of the last checkpoint written
        self._done = 0  # epochs completed

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must share with this run to resume it (checkpoint.mismatch)."""
        return checkpoint.run_identity(self.cfg, self.backend.world_size, self.global_batch, self.task.name,
                                       self.train_loader)

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

    def _poll(self, flag: PreemptFlag, failed: torch.Tensor | None = None) -> float:
        """Whether any rank got a preemption signal (PREEMPT) or failed (FAILED: ``failed`` is a device
        boolean): one all-reduce and one host read, asked every preempt_check_every steps."""
        stop = torch.full((), PREEMPT if flag.raised else 0.0, device=self.device)
        if failed is not None:
            stop.masked_fill_(failed, FAILED)
        return float(self.backend.all_reduce(stop, op="max").item())

    def _add_loss(self, loss_sum: torch.Tensor, skipped: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a step's loss. With fp16's loss scaler a step whose loss overflowed is skipped by the
        scaler (training goes on): it is counted in ``skipped``, not added; otherwise a non-finite
        loss makes the sum non-finite, which fails the run at the next poll."""
        if self.scaler.is_enabled():
            finite = torch.isfinite(loss)
            skipped.add_(~finite)
            loss_sum.add_(torch.where(finite, loss, torch.zeros_like(loss)))
        else:
            loss_sum.add_(loss)

    def train_epoch(self, epoch: int, start_step: int, flag: PreemptFlag) -> dict:
        """One epoch from ``start_step``; stops early (``preempted``, ``next_step``) when any rank got
        the signal, or, seen at the last step, completes with ``stop_after``; raises NonFiniteLoss."""
        loader = self.train_loader
        loader.set_epoch(epoch, start_step)
        self.net.train()
        self.accel.synchronize()
        self.energy.start()
        start = time.perf_counter()
        wait, steps, loss_sum = 0.0, 0, torch.zeros((), device=self.device)
        skipped = torch.zeros((), device=self.device)  # fp16 steps of this epoch whose loss overflowed
        stop_after, checked = False, start_step
        batches = iter(loader)
        for step in range(start_step, loader.steps_per_epoch):
            t0 = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - t0
            self._add_loss(loss_sum, skipped, self.step(batch))
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
                # failed: a non-finite loss, or (fp16) every step of the epoch so far overflowed
                verdict = self._poll(flag, ~torch.isfinite(loss_sum) | (skipped >= step + 1 - start_step))
                if verdict >= FAILED:
                    raise NonFiniteLoss(f"epoch {epoch + 1}: the training loss is not finite (NaN or infinite) "
                                        f"after step {step + 1} (finite up to step {checked}); the run failed "
                                        f"(a smaller train.lr?)" if self.backend.rank == 0 else "")
                if verdict >= PREEMPT and not last:
                    return {"preempted": True, "next_step": step + 1}
                stop_after, checked = verdict >= PREEMPT, step + 1
            if last:
                break
        self.accel.synchronize()
        elapsed = time.perf_counter() - start
        reading = self.energy.stop()
        world = self.backend.world_size
        loss_mean = float(self.backend.all_reduce(loss_sum.clone()).item()) / max(steps * world, 1)
        images = steps * self.cfg.train.batch_size * world
        energy = combine_energy(self.backend.gather_objects(reading), images)
        return {"preempted": False, "stop_after": stop_after, "epoch_time_s": elapsed, "train_images": images,
                "images_per_s": images / max(elapsed, 1e-9), "data_wait_s": wait, "loss": loss_mean, "steps": steps,
                **energy}

    def save(self, epoch: int, step: int, averaged: bool = True) -> None:
        """Checkpoint (rank 0 writes; every rank gives its random state). ``averaged``: the live
        buffers were just averaged (an epoch's end). Else (a preemption) the live model is left
        alone: the saved model gets averaged copies, each rank's own buffers are kept beside."""
        model, own = self.model.state_dict(), None
        if not averaged and self.backend.world_size > 1:
            mine = checkpoint.own_buffers(self.model)
            # DDP starts every forward from rank 0's buffers: its alone are kept (no all-gather of every
            # rank's at scale); Horovod's ranks each keep their own
            own = [mine] if self.backend.broadcasts_buffers else self.backend.gather_objects(mine)
            model = checkpoint.averaged_state(self.model, self.backend)
        rng = self.backend.gather_objects(rng_states(self.accel))
        self._saved = (epoch, step)

        def write() -> None:  # rank 0 writes; a failure (a full disk) reaches every rank at once
            state = {"model": model, "optimizer": self.optimizer.state_dict(),
                     "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                     "epoch": epoch, "step": step, "world_size": self.backend.world_size, "rng": rng,
                     "config": to_dict(self.cfg), "identity": self.identity(),
                     **({"rank_buffers": own} if own is not None else {})}
            checkpoint.save(self.run_dir, state, epoch, step, self.cfg.train.keep_checkpoints)

        root_decides(self.backend, write)

    def restore(self) -> tuple[int, int]:
        """Load the newest checkpoint, refused in one line where it is another run's (world size,
        model, optimiser, global batch, task, bands or data set differ)."""
        path = checkpoint.newest(self.run_dir)
        if path is None:
            raise JeopardaError(f"{self.run_dir}: --resume but no checkpoint in "
                                f"{checkpoint.checkpoint_dir(self.run_dir)}")
        state = checkpoint.load(path)
        checkpoint.check_same_run(path, state, self.identity())
        epoch, step = checkpoint.apply_state(path, state, {"model": self.model, "optimizer": self.optimizer,
                                                           "schedule": self.schedule, "scaler": self.scaler})
        set_rng_states(state["rng"][self.backend.rank], self.accel)
        if state.get("rank_buffers"):  # one list (rank 0's, DDP) or one per rank
            kept = state["rank_buffers"]
            self._own = kept[self.backend.rank] if len(kept) > 1 else kept[0]
        self._saved = (epoch, step)
        self.say(f"resumed from {path} (epoch {epoch + 1}, step {step})")
        return epoch, step

    def run(self, resume: bool) -> int:
        """Train (from the newest checkpoint when ``resume``), test, log; returns the exit status:
        0, or EXIT_PREEMPTED after a preemption signal in any phase (with a checkpoint, or a line
        saying there was nothing to lose). A non-finite loss logs status failed and raises."""
        with self.flag as flag:
            check_in_setup(self.backend, flag, resume)  # a signal during staging or set-up
            flag.phase = "training"  # from here on the loop sees the signal and checkpoints
            epoch0, step0 = self.restore() if resume else (0, 0)
            if resume:
                root_decides(self.backend, partial(write_run_config, self.run_dir, self.cfg, resume=True))
            self.backend.sync_initial_state(self.model, self.optimizer)
            if self._own is not None:  # each rank's own batch-norm statistics, as it left them
                checkpoint.set_buffers(self.model, self._own)
            record = self.recorder
            record.start(self.task, self.train_loader, self.precision, self.global_batch,
                         resumed_from=[epoch0, step0] if resume else None)
            record.training_starts(self.train_loader, self.val_loader, self.global_batch)
            try:
                return self._epochs(epoch0, step0, flag)
            except NonFiniteLoss as exc:
                record.end("failed", self._done, {})
                raise JeopardaError(str(exc)) from None

    def _epochs(self, epoch0: int, step0: int, flag: PreemptFlag) -> int:
        record, done = self.recorder, epoch0
        last_val: dict = {}  # the latest validation's scores
        for epoch in range(epoch0, self.cfg.train.epochs):
            self._done = epoch
            record.epoch_start(epoch)
            stats = self.train_epoch(epoch, step0 if epoch == epoch0 else 0, flag)
            record.epoch_stop(epoch, stats)
            if stats["preempted"]:
                return self._preempted((epoch, stats["next_step"]), last_val, "checkpoint written")
            last_val = self._validate(epoch) or last_val
            record.epoch(epoch, stats, last_val, lr=self.schedule.get_last_lr()[0])
            done = epoch + 1
            every = self.cfg.train.checkpoint_every
            if every and (done % every == 0 or done == self.cfg.train.epochs):
                self.backend.average_buffers(self.model)
                self.save(done, 0)
            if stats["stop_after"]:
                return self._preempted((done, 0), last_val, "checkpoint written at the epoch's end")
        flag.phase = "test"
        try:
            test = self._test(flag)
        except Preempted:
            return self._preempted((done, 0), last_val, "checkpoint written; a resumed run only tests")
        self.backend.average_buffers(self.model)
        replicas = replica_digests(self.backend, self.model)
        record.end("completed", done, last_val, test, replicas)
        if len(set(replicas)) != 1:
            raise JeopardaError(f"model replicas differ across ranks at the end of the run: {replicas}")
        return 0

    def _preempted(self, at: tuple[int, int], last_val: dict, what: str) -> int:
        """Checkpoint at ``at`` (epoch, step) unless written there already, log, say; EXIT_PREEMPTED."""
        if self._saved != at:
            self.save(*at, averaged=False)
        self.recorder.end("preempted", at[0], last_val)
        # no rank leaves before rank 0 has written: srun --kill-on-bad-exit would end the step (and
        # rank 0's write) as soon as the first rank exits with EXIT_PREEMPTED
        self.backend.barrier()
        seen = [s for s in self.backend.gather_objects((self.flag.signal, self.flag.signal_phase)) if s[0]]
        signum, phase = seen[0] if seen else (None, "training")  # the first rank that got it
        self.say(f"preempted by {signal_name(signum)} during {phase}: {what}; exit {EXIT_PREEMPTED}")
        return EXIT_PREEMPTED

    def _validate(self, epoch: int) -> dict:
        every = self.cfg.train.val_every
        if not every or (epoch + 1) % every or self.val_loader is None:
            return {}
        self.backend.average_buffers(self.model)
        self.recorder.eval_start(epoch)
        scores = evaluate(self.model, self.val_loader, self.backend, self.task, self.autocast)
        self.recorder.eval_stop(epoch, scores)  # and time to target
        return scores

    def _test(self, flag: PreemptFlag) -> dict:
        if not self.cfg.train.test:
            return {}
        self.backend.set_timeout(self.cfg.dist.setup_timeout_s)  # building it may stage and verify shards
        loader = build_loader(self.cfg, self.env, "test", self.accel, self.task)
        self.backend.set_timeout(self.cfg.dist.timeout_s)
        self.backend.average_buffers(self.model)
        # every rank reads as many test batches: the flag is all-reduced every preempt_check_every
        watched = watch(loader, self.cfg.train.preempt_check_every, lambda: self._poll(flag) >= PREEMPT)
        return evaluate(self.model, cast(Loader, watched), self.backend, self.task, self.autocast)

