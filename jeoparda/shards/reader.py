"""Batched reads from one shard (v1 or v2): images straight into a caller's buffer.

Patches are stored one chunk each, in order. For uncompressed shards the byte offset of every
chunk is looked up once (HDF5's chunk index); ShardWriter lays chunks out back to back, with an
occasional index node between them, so a run of patches is read with one ``preadv`` per
contiguous stretch, straight into the destination. Compressed shards go through HDF5. Both paths
give the same array.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import h5py
import numpy as np

from jeoparda.shards.format import ShardError, damaged, shard_version


class ShardReader:
    """One shard open for reading; whatever a damaged file makes HDF5 raise is a one-line
    :class:`~jeoparda.shards.format.ShardError` naming the shard."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        try:
            self._file = h5py.File(self.path, "r")
        except Exception as exc:
            raise damaged(self.path, exc) from None
        try:
            self._open()
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception):
                raise damaged(self.path, exc) from None
            raise

    def _open(self) -> None:
        self.version = shard_version(self._file, self.path)
        f = self._file
        self._images = f["images"]
        self.image_shape: tuple[int, ...] = tuple(self._images.shape[1:])
        self._chunk_bytes = 2 * int(np.prod(self.image_shape))
        key = "labels" if self.version >= 2 else "labels19"
        self.labels: np.ndarray | None = f[key][...] if key in f else None
        self.labels43: np.ndarray | None = f["labels43"][...] if "labels43" in f else None
        self.label: np.ndarray | None = f["label"][...] if "label" in f else None  # single-label index
        self.names = [n.decode() for n in f["names"][...]]
        self._offsets = self._chunk_offsets()
        self._fd = os.open(self.path, os.O_RDONLY) if self._offsets is not None else None

    @property
    def labels19(self) -> np.ndarray | None:
        """The 19-class multi-hot labels (the v1 name of ``labels``)."""
        return self.labels

    @property
    def has_s1(self) -> bool:
        return "s1" in self._file

    @property
    def has_masks(self) -> bool:
        return "masks" in self._file

    def _chunk_offsets(self) -> np.ndarray | None:
        """File offset of every patch's chunk, or None where raw reads do not apply."""
        ds, n = self._images, len(self.names)
        if n == 0 or ds.compression or ds.dtype != np.dtype("<u2") or sys.byteorder != "little":
            return None
        if ds.id.get_num_chunks() != n:
            return None
        offsets = np.empty(n, np.int64)
        for i in range(n):
            info = ds.id.get_chunk_info(i)
            if info.chunk_offset[0] != i or info.size != self._chunk_bytes or info.filter_mask:
                return None
            offsets[i] = info.byte_offset
        return offsets

    @property
    def direct(self) -> bool:
        """Whether reads bypass HDF5 (raw, back-to-back chunks)."""
        return self._fd is not None

    def __len__(self) -> int:
        return len(self.names)

    def read_images(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Images ``start:stop`` as uint16 (n, C, H, W), into ``out[:n]`` when given."""
        n = stop - start
        out = np.empty((n, *self.image_shape), np.uint16) if out is None else out[:n]
        if n == 0:
            return out
        if self._fd is not None and self._offsets is not None and out.flags.c_contiguous:
            offs = self._offsets[start:stop]
            cuts = np.flatnonzero(np.diff(offs) != self._chunk_bytes) + 1
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
                view = memoryview(out[a:b]).cast("B")  # type: ignore[arg-type]
                if os.preadv(self._fd, [view], int(offs[a])) != view.nbytes:
                    raise ShardError(f"{self.path}: short read at patch {start + a}; file truncated?")
        else:
            try:
                self._images.read_direct(out, np.s_[start:stop])
            except Exception as exc:
                raise damaged(self.path, exc) from None
        return out

    def read_s1(self, start: int, stop: int) -> np.ndarray:
        """Sentinel-1 ``start:stop`` as float32 (n, 2, H, W) dB."""
        if not self.has_s1:
            raise ShardError(f"{self.path}: holds no Sentinel-1 data ('s1'); convert with --with-s1")
        try:
            return self._file["s1"][start:stop]
        except Exception as exc:
            raise damaged(self.path, exc) from None

    def read_masks(self, start: int, stop: int) -> np.ndarray:
        """Class-index maps ``start:stop`` as uint8 (n, H, W), 255 = no class."""
        if not self.has_masks:
            raise ShardError(f"{self.path}: holds no reference maps ('masks')")
        try:
            return self._file["masks"][start:stop]
        except Exception as exc:
            raise damaged(self.path, exc) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._file.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
