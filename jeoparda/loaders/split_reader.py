"""Batched, shard-local reads of a split: split-global indices -> uint16 images, labels, S1.

Indices are sorted and cut into runs of consecutive patches of one shard; each run is one
sequential read into a reusable buffer. Shard files open lazily, in the process that reads (so a
reader can be handed to DataLoader workers before any file is open). Works on v1 and v2 shards;
``optical`` selects a subset of the stored bands, ``s1`` the Sentinel-1 channels to deliver.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jeoparda.loaders.partition import offsets
from jeoparda.safe_files import inside
from jeoparda.shards.format import Layout, ShardError, check_shard_format
from jeoparda.shards.reader import ShardReader


class SplitReader:
    def __init__(self, root: Path, shards: list[dict[str, Any]], layout: Layout,
                 optical: list[int] | None = None, s1: list[int] | None = None, masks: bool = False) -> None:
        self.root = Path(root)
        # read_manifest checked the paths against the data set; the root may be a staged copy
        folders: dict[Path, Path] = {}  # each shard folder resolved once
        self.files = [inside(self.root, s["file"], f"{self.root}: shard file", folders) for s in shards]
        self.sizes = [int(s["patches"]) for s in shards]
        self.offsets = offsets(self.sizes)
        self.layout, self.optical, self.s1, self.masks = layout, optical, list(s1 or []), masks
        self.stored_shape = layout.image_shape
        bands = len(optical) if optical is not None else self.stored_shape[0]
        self.image_shape = (bands, *self.stored_shape[1:])
        self.s1_shape = (len(self.s1), *self.stored_shape[1:])
        self._open: dict[int, ShardReader] = {}
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self._scratch = np.empty((0, *self.stored_shape), np.uint16)
        self._batch = np.empty((0, *self.stored_shape), np.uint16)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_open={}, _scratch=None, _batch=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_buffers()

    def check_formats(self, ids: list[int] | None = None) -> None:
        """Format, version and patch count of the shards ``ids`` (default all) against the manifest."""
        for s in range(len(self.files)) if ids is None else ids:
            path, size = self.files[s], self.sizes[s]
            if not path.is_file():
                raise ShardError(f"{path}: shard file is missing")
            check_shard_format(path, size, self.layout)

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
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)], strict=True):
            s = int(shard_of[a])
            start = int(ordered[a] - self.offsets[s])
            out.append((s, start, start + (b - a), order[a:b]))
        return out

    def read(self, indices: np.ndarray, out: np.ndarray | None = None,
             s1_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Images (n, C, H, W) uint16, labels (n, K) uint8 (multi-hot, or one-hot for single-label
        data) and, if asked, S1 (n, c, H, W) float32, in ``indices`` order.

        Without ``out`` the images land in a buffer the reader reuses (valid until the next read):
        fresh multi-megabyte buffers each batch would cost a page fault per 4 KiB.
        """
        n = len(indices)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"patch index out of range 0..{len(self) - 1}")
        select = self.optical is not None
        if out is None or select:
            if len(self._batch) < n:
                self._batch = np.empty((n, *self.stored_shape), np.uint16)
            stored = self._batch[:n]
        else:
            stored = out[:n]
        # targets: class vectors, or (segmentation) the reference maps
        labels = np.zeros((n, *self.layout.size) if self.masks else (n, self.layout.classes), np.uint8)
        s1 = None
        if self.s1:
            s1 = s1_out[:n] if s1_out is not None else np.empty((n, *self.s1_shape), np.float32)
        for s, start, stop, positions in self.runs(indices):
            shard = self._shard(s)
            first = int(positions[0])
            if np.array_equal(positions, np.arange(first, first + len(positions))):
                shard.read_images(start, stop, stored[first:])  # straight into place
            else:
                if len(positions) > len(self._scratch):
                    self._scratch = np.empty((max(len(positions), 16), *self.stored_shape), np.uint16)
                stored[positions] = shard.read_images(start, stop, self._scratch)
            if self.masks:
                labels[positions] = shard.read_masks(start, stop)
            elif self.layout.labels and shard.labels is not None:
                labels[positions] = shard.labels[start:stop]
            elif self.layout.label and shard.label is not None:  # single-label: one-hot targets
                labels[positions, shard.label[start:stop]] = 1
            if s1 is not None:
                s1[positions] = shard.read_s1(start, stop)[:, self.s1]
        if not select:
            return stored, labels, s1
        images = out[:n] if out is not None else np.empty((n, *self.image_shape), np.uint16)
        np.take(stored, self.optical, axis=1, out=images)  # type: ignore[arg-type]
        return images, labels, s1

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
        self._open.clear()
