"""``jeoparda bench loader``: the input pipeline alone, without a model.

Runs ``warmup`` steps (not timed: reader start-up, page cache), then times ``steps`` steps,
cycling epochs as needed; the device is synchronised before each clock reading. MB/s counts the
raw shard bytes the images stand for (C x H x W x 2 bytes; 345,600 per BigEarthNet patch), so the
figure compares with storage bandwidth.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig
from jeoparda.devices import bind_gpu, launcher_gather
from jeoparda.loaders.base import Batch, Loader
from jeoparda.loaders.build import build_loader


def endless(loader: Loader) -> Iterator[Batch]:
    """Batches across epochs (set_epoch 0, 1, 2, ...) without end."""
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        yield from loader


def run(cfg: RunConfig, env: ClusterEnv, split: str, steps: int, warmup: int = 2) -> dict[str, Any]:
    """Time the loader of ``split`` on this rank's accelerator (its own GPU where there is one)."""
    build_start = time.perf_counter()
    loader = build_loader(cfg, env, split, bind_gpu(env, launcher_gather(env)))
    build_s = time.perf_counter() - build_start
    stream = endless(loader)
    for _ in range(warmup):
        next(stream)
    loader.accel.synchronize()
    start = time.perf_counter()
    images = 0
    batch_shape: tuple[int, ...] = ()
    for _ in range(steps):
        image = next(stream)["image"]
        images += len(image)
        batch_shape = tuple(image.shape)
    loader.accel.synchronize()
    elapsed = time.perf_counter() - start
    rate = images / elapsed
    patch_bytes = 2 * loader.channels * int(batch_shape[2]) * int(batch_shape[3])
    return {"backend": cfg.data.backend, "split": split, "batch_size": cfg.train.batch_size,
            "steps": steps, "warmup": warmup, "workers": cfg.data.workers, "images": images,
            "seconds": elapsed, "images_per_s": rate, "mb_per_s": rate * patch_bytes / 1e6,
            "steps_per_epoch": loader.steps_per_epoch, "build_s": build_s,
            "stage_time_s": loader.stage_time_s, "device": loader.accel.kind,
            "ring_registered": bool(getattr(loader, "_registered", ()))}
