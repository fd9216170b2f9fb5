"""A window's input crop from the tile's patches, and a batch of crops labelled on the device.

Crops are normalised as the loaders normalise (the checkpoint's ``data.bands``: the same channels,
the same statistics) and zero where no patch lies, which is the mean after normalisation.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.inference.plan import Patch, TilePlan, Window
from jeoparda.loaders.bands import choose_bands
from jeoparda.loaders.base import normalisers
from jeoparda.shards.reader import ShardReader

OPEN_SHARDS = 16  # a tile's patches may lie in many shards: keep the file descriptors few


@dataclass
class Channels:
    """Which of a data set's bands reach the model, and how they are normalised."""
    optical: list[int]
    s1: list[int]
    count: int
    names: list[str]
    mean: np.ndarray
    inv: np.ndarray
    s1_mean: Any
    s1_inv: Any


def channels(dataset: Path, manifest: dict[str, Any], bands_spec: str) -> Channels:
    bands = choose_bands(bands_spec, manifest["bands"], bool(manifest.get("s1_bands")), str(dataset))
    mean, inv, s1_mean, s1_inv = normalisers(manifest, bands, dataset)
    optical = bands.optical if bands.optical is not None else list(range(len(manifest["bands"])))
    return Channels(list(optical), list(bands.s1 or []), len(bands.names), list(bands.names), mean, inv,
                    s1_mean, s1_inv)


class CropReader:
    """Normalised crops of one tile's map and the reference classes of its cells, read from the shards."""

    def __init__(self, dataset: Path, plan: TilePlan, chans: Channels) -> None:
        self.dataset, self.plan, self.chans = dataset, plan, chans
        self.by_cell: dict[tuple[int, int], Patch] = {plan.cell_of(p): p for p in plan.patches}
        self.readers: OrderedDict[str, ShardReader] = OrderedDict()

    def _reader(self, patch: Patch) -> ShardReader:
        """The patch's shard, open; at most OPEN_SHARDS stay open (the least recently read closes)."""
        if patch.file in self.readers:
            self.readers.move_to_end(patch.file)
        else:
            if len(self.readers) >= OPEN_SHARDS:
                self.readers.popitem(last=False)[1].close()
            self.readers[patch.file] = ShardReader(self.dataset / patch.file)
        return self.readers[patch.file]

    def patch_image(self, patch: Patch) -> np.ndarray:
        reader, i, c = self._reader(patch), patch.index, self.chans
        image = np.empty((c.count, self.plan.patch_h, self.plan.patch_w), np.float32)
        image[:len(c.optical)] = (reader.read_images(i, i + 1)[0][c.optical] - c.mean) * c.inv
        if c.s1:
            image[len(c.optical):] = (reader.read_s1(i, i + 1)[0][c.s1] - c.s1_mean) * c.s1_inv
        return image

    def reference(self, cell: tuple[int, int]) -> np.ndarray | None:
        patch = self.by_cell[cell]
        reader = self._reader(patch)
        return reader.read_masks(patch.index, patch.index + 1)[0] if reader.has_masks else None

    def crop(self, w: Window) -> np.ndarray:
        ph, pw = self.plan.patch_h, self.plan.patch_w
        out = np.zeros((self.chans.count, w.cy1 - w.cy0, w.cx1 - w.cx0), np.float32)
        for r in range(w.cy0 // ph, -(-w.cy1 // ph)):
            for c in range(w.cx0 // pw, -(-w.cx1 // pw)):
                patch = self.by_cell.get((r, c))
                if patch is None:
                    continue
                y0, y1 = max(w.cy0, r * ph), min(w.cy1, (r + 1) * ph)
                x0, x1 = max(w.cx0, c * pw), min(w.cx1, (c + 1) * pw)
                image = self.patch_image(patch)
                out[:, y0 - w.cy0:y1 - w.cy0, x0 - w.cx0:x1 - w.cx0] = \
                    image[:, y0 - r * ph:y1 - r * ph, x0 - c * pw:x1 - c * pw]
        return out

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()


@torch.no_grad()
def label_batch(model: torch.nn.Module, crops: np.ndarray, accel: Accelerator,
                bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Class index (uint8) and its probability (float32) per pixel of a batch of equal crops; the
    batch crosses to the device pinned, the answers come back to the host."""
    x = accel.to_device(torch.from_numpy(crops))
    with torch.autocast(accel.device.type, dtype=torch.bfloat16, enabled=bf16):
        scores = model(x)
    best, cls = torch.softmax(scores.float(), dim=1).max(1)
    return cls.to(torch.uint8).cpu().numpy(), best.cpu().numpy()
