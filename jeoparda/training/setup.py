"""How a rank sets up before training: its share of the global batch, its CPU threads, the
torch.compile backend, and whether channels_last may be used with its backend."""
from __future__ import annotations

import os
from typing import Any

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig
from jeoparda.errors import JeopardaError


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
