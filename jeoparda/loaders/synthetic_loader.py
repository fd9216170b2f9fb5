"""The ``synthetic`` backend: one batch of random tensors of the real shape, created once on the
device and yielded every step. No I/O and no host work, so a run measures compute and
communication alone (as Horovod's synthetic benchmark does)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from jeoparda.labels import CLASSES19
from jeoparda.loaders.bands import choose_bands
from jeoparda.loaders.base import Batch, Loader
from jeoparda.loaders.partition import EpochPlan
from jeoparda.sentinel2 import BAND_NAMES, TARGET_SIZE

DEFAULT_PATCHES = 1024


class SyntheticLoader(Loader):
    """Steps per epoch follow the real split when ``data.path`` is set (so the two backends run
    the same number of steps), else ``data.synthetic_patches`` (default 1024 per rank). The
    targets are those of ``task``, drawn by the task."""

    def plan(self) -> EpochPlan:
        if self.source is not None:
            return super().plan()
        patches = self.cfg.data.synthetic_patches or DEFAULT_PATCHES * self.env.world_size
        steps = max(1, patches // (self.env.world_size * self.batch_size))
        return EpochPlan(np.zeros(0, np.int64), np.zeros(0, bool), steps, self.batch_size)

    @property
    def channels(self) -> int:
        return len(self.band_names)

    @property
    def dataset(self) -> str:
        return self.source.dataset if self.source is not None else "synthetic"

    @property
    def class_names(self) -> list[str]:
        return self.source.classes if self.source is not None else list(CLASSES19)

    @property
    def band_names(self) -> list[str]:
        if self.source is not None:
            return self.source.bands.names
        return choose_bands(self.cfg.data.bands, BAND_NAMES, True, "the synthetic data").names

    @property
    def num_classes(self) -> int:
        return self.source.layout.classes if self.source is not None else len(CLASSES19)

    @property
    def size(self) -> tuple[int, int]:
        return self.source.layout.size if self.source is not None else (TARGET_SIZE, TARGET_SIZE)

    def _batches(self) -> Iterator[Batch]:
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed + self.env.rank)
        n = self.batch_size
        batch = {"image": torch.randn(n, self.channels, *self.size, device=self.device, generator=gen),
                 "label": self.target_task.synthetic_labels(n, self.num_classes, self.size, self.device, gen),
                 "mask": torch.ones(n, dtype=torch.bool, device=self.device)}
        for _ in range(self.start_step, self.steps_per_epoch):
            yield batch
