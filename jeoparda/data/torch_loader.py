"""The ``torch`` backend: h5py reads in background processes (torch DataLoader), one item per
batch (no per-sample Python work), prefetching, pinned memory and non-blocking copies on CUDA."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jeoparda.config import AugmentConfig
from jeoparda.data.augment import apply_geometry, geometry_codes, normalise
from jeoparda.data.loader_base import Batch, Loader
from jeoparda.data.partition import EpochPlan
from jeoparda.data.reader import SplitReader


class EpochBatches(Dataset):
    """Item ``step`` is the whole batch of that step of one rank's epoch plan."""

    def __init__(self, reader: SplitReader, plan: EpochPlan, mean: np.ndarray, inv_std: np.ndarray,
                 augment: AugmentConfig | None, seed: int, epoch: int, rank: int) -> None:
        self.reader, self.plan, self.mean, self.inv_std = reader, plan, mean, inv_std
        self.augment, self.seed, self.epoch, self.rank = augment, seed, epoch, rank

    def __len__(self) -> int:
        return self.plan.steps

    def __getitem__(self, step: int) -> Batch:
        sl = self.plan.batch_slice(step)
        images, labels = self.reader.read(self.plan.indices[sl])
        x = normalise(images, self.mean, self.inv_std)
        if self.augment is not None:
            apply_geometry(x, geometry_codes(self.augment, len(x), self.seed, self.epoch, self.rank, step))
        return {"image": torch.from_numpy(x), "label": torch.from_numpy(labels.astype(np.float32)),
                "mask": torch.from_numpy(self.plan.mask[sl].copy())}


class TorchLoader(Loader):
    def _batches(self) -> Iterator[Batch]:
        src, data = self.source, self.cfg.data
        batches = EpochBatches(src.reader(), self.plan(), src.mean, src.inv_std,
                               data.augment if self.augment else None, self.cfg.train.seed,
                               self.epoch, self.env.rank)
        cuda = self.device.type == "cuda"
        if data.workers == 0:
            stream = iter(batches[i] for i in range(len(batches)))
        else:
            stream = iter(DataLoader(batches, batch_size=None, shuffle=False, num_workers=data.workers,
                                     prefetch_factor=data.prefetch, pin_memory=cuda))
        for batch in stream:
            yield {k: v.to(self.device, non_blocking=cuda) for k, v in batch.items()}
