"""Batched, shard-local reads of a split: split-global indices -> uint16 images and labels.

Indices are sorted and cut into runs of consecutive patches of one shard; each run is one
sequential HDF5 read into a reusable buffer. Shard files open lazily, in the process that reads
(so a reader can be handed to DataLoader workers before any file is open).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jeoparda.loaders.partition import offsets
from jeoparda.shards.format import IMAGE_SHAPE, ShardError, ShardReader, check_shard_format


class SplitReader:
    def __init__(self, root: Path, shards: list[dict[str, Any]]) -> None:
        self.root = Path(root)
        self.files = [self.root / s["file"] for s in shards]
        self.sizes = [int(s["patches"]) for s in shards]
        self.offsets = offsets(self.sizes)
        self._open: dict[int, ShardReader] = {}
        self._scratch = np.empty((0, *IMAGE_SHAPE), np.uint16)
        self._batch = np.empty((0, *IMAGE_SHAPE), np.uint16)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        empty = np.empty((0, *IMAGE_SHAPE), np.uint16)
        return {**self.__dict__, "_open": {}, "_scratch": empty, "_batch": empty}

    def check_formats(self, ids: list[int] | None = None) -> None:
        """Format, version and patch count of the shards ``ids`` (default all) against the manifest."""
        for s in range(len(self.files)) if ids is None else ids:
            path, size = self.files[s], self.sizes[s]
            if not path.is_file():
                raise ShardError(f"{path}: shard file is missing")
            check_shard_format(path, size)

    def _shard(self, s: int) -> ShardReader:
        if s not in self._open:
            self._open[s] = ShardReader(self.files[s])
        return self._open[s]

    def runs(self, indices: np.ndarray) -> list[tuple[int, int, int, np.ndarray]]:
        """(shard, local start, local stop, positions in ``indices``) for each sequential run."""
        order = np.argsort(indices, kind="stable")
        ordered = indices[order]
        shard_of = np.searchsorted(self.offsets, ordered, side="right") - 1
        breaks = np.flatnonzero((np.diff(ordered) != 1) | (np.diff(shard_of) != 0)) + 1
        out = []
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)]):
            s = int(shard_of[a])
            start = int(ordered[a] - self.offsets[s])
            out.append((s, start, start + (b - a), order[a:b]))
        return out

    def read(self, indices: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Images (n, 12, 120, 120) uint16 and 19-class labels (n, 19) uint8, in ``indices`` order.

        Without ``out`` the images land in a buffer the reader reuses (valid until the next read):
        fresh multi-megabyte buffers each batch would cost a page fault per 4 KiB.
        """
        n = len(indices)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"patch index out of range 0..{len(self) - 1}")
        if out is None:
            if len(self._batch) < n:
                self._batch = np.empty((n, *IMAGE_SHAPE), np.uint16)
            out = self._batch
        images = out[:n]
        labels = np.empty((n, 19), np.uint8)
        for s, start, stop, positions in self.runs(indices):
            shard = self._shard(s)
            first = int(positions[0])
            if np.array_equal(positions, np.arange(first, first + len(positions))):
                shard.read_images(start, stop, images[first:])  # straight into place
            else:
                if len(positions) > len(self._scratch):
                    self._scratch = np.empty((max(len(positions), 16), *IMAGE_SHAPE), np.uint16)
                images[positions] = shard.read_images(start, stop, self._scratch)
            labels[positions] = shard.labels19[start:stop]
        return images, labels

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
        self._open.clear()
