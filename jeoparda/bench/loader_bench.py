"""``jeoparda bench loader``: the input pipeline alone, without a model.

Runs ``warmup`` steps (not timed: reader start-up, page cache), then times ``steps`` steps,
cycling epochs as needed; the device is synchronised before each clock reading. MB/s counts the
raw shard bytes the images stand for (12 x 120 x 120 uint16 = 345,600 bytes per patch), so the
figure compares with storage bandwidth.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from jeoparda.config import RunConfig
from jeoparda.loaders.build import build_loader
from jeoparda.loaders.base import Batch, Loader
from jeoparda.shards.format import IMAGE_SHAPE
from jeoparda.devices import synchronize
from jeoparda.cluster.env import ClusterEnv

PATCH_BYTES = 2 * IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]


def endless(loader: Loader) -> Iterator[Batch]:
    """Batches across epochs (set_epoch 0, 1, 2, ...) without end."""
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        yield from loader


def run(cfg: RunConfig, env: ClusterEnv, split: str, steps: int, warmup: int = 2) -> dict[str, Any]:
    build_start = time.perf_counter()
    loader = build_loader(cfg, env, split)
    build_s = time.perf_counter() - build_start
    stream = endless(loader)
    for _ in range(warmup):
        next(stream)
    synchronize(loader.device)
    start = time.perf_counter()
    images = 0
    for _ in range(steps):
        images += len(next(stream)["image"])
    synchronize(loader.device)
    elapsed = time.perf_counter() - start
    rate = images / elapsed
    return {"backend": cfg.data.backend, "split": split, "batch_size": cfg.train.batch_size,
            "steps": steps, "warmup": warmup, "workers": cfg.data.workers, "images": images,
            "seconds": elapsed, "images_per_s": rate, "mb_per_s": rate * PATCH_BYTES / 1e6,
            "steps_per_epoch": loader.steps_per_epoch, "build_s": build_s,
            "stage_time_s": loader.stage_time_s, "device": str(loader.device)}
