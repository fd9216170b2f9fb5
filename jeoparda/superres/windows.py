"""Training windows: the Wald pairs of many patches in memory, sampled as random augmented crops."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from jeoparda.superres.data import Native
from jeoparda.superres.pairs import Group, reduced_pairs


class WindowPool:
    """All reduced-scale pairs of one group; :meth:`sample` draws a batch of square windows, each
    turned by one of the eight symmetries of the square (the bands' spatial relation is isotropic)."""

    def __init__(self, group: Group, patches: Sequence[Native], mtf: float,
                 tick: Callable[[int], object] | None = None) -> None:
        xs, ys = [], []
        for bands in patches:
            x, y = reduced_pairs(group, bands, mtf)
            xs.append(x)
            ys.append(y)
            if tick is not None:
                tick(1)
        self.x, self.y = np.concatenate(xs), np.concatenate(ys)
        self.size = self.x.shape[-1]

    def __len__(self) -> int:
        return len(self.x)

    def sample(self, rng: np.random.Generator, batch: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = min(window, self.size)
        xs, ys = [], []
        for i in rng.integers(0, len(self.x), size=batch):
            r, c = rng.integers(0, self.size - w + 1, size=2)
            turn, flip = int(rng.integers(4)), bool(rng.integers(2))
            pair = []
            for a in (self.x[i], self.y[i]):
                crop = np.rot90(a[:, r:r + w, c:c + w], turn, axes=(1, 2))
                pair.append(crop[:, :, ::-1] if flip else crop)
            xs.append(pair[0])
            ys.append(pair[1])
        return (torch.from_numpy(np.ascontiguousarray(np.stack(xs))),
                torch.from_numpy(np.ascontiguousarray(np.stack(ys))))
