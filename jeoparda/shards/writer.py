"""Writing one shard (format v2). Deterministic: no HDF5 time stamps, fixed creation order, so
the same patches give byte-identical files whatever process writes them."""
from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from jeoparda.safe_files import open_write
from jeoparda.sentinel2 import S1_BANDS
from jeoparda.shards.format import COMPRESSION, FORMAT, Layout


class ShardWriter:
    """Appends patches to a new shard file; ``close()`` writes the small datasets and trims.

    Images (and S1) go to disk as they come, one chunk per patch; targets are collected and
    written at the end."""

    def __init__(self, path: Path, capacity: int, layout: Layout, compression: str = "none") -> None:
        if compression not in COMPRESSION:
            raise ValueError(f"unknown compression {compression!r}; choose {', '.join(COMPRESSION)}")
        self.path, self.layout = Path(path), layout
        self._datasets = layout.datasets()
        # Uncompressed chunks go in whole (H5Dwrite_chunk): the same bytes in the same place as a
        # selection write, at half the cost (measured), since no selection is computed.
        self._direct = not COMPRESSION[compression]
        os.close(open_write(self.path))  # a link at the path is refused, not followed
        self._file = h5py.File(self.path, "w", track_order=False)
        self._file.attrs["format"] = FORMAT
        self._file.attrs["version"] = layout.version
        self._file.attrs["bands"] = list(layout.bands)
        if layout.s1:
            self._file.attrs["s1_bands"] = list(S1_BANDS)
        if layout.label:
            self._file.attrs["classes"] = layout.label
        self._images = self._big("images", layout.image_shape, np.uint16, capacity, compression)
        self._s1 = self._big("s1", (len(S1_BANDS), *layout.size), np.float32, capacity, compression) \
            if layout.s1 else None
        self._rows: dict[str, list[np.ndarray]] = {k: [] for k in ("labels", "labels43", "masks", "label")}
        self._names: list[str] = []

    def _big(self, key: str, shape: tuple[int, ...], dtype: type, capacity: int, compression: str) -> h5py.Dataset:
        return self._file.create_dataset(key, shape=(capacity, *shape), maxshape=(None, *shape), dtype=dtype,
                                         chunks=(1, *shape), track_times=False, **COMPRESSION[compression])

    def __len__(self) -> int:
        return len(self._names)

    def append(self, name: str, image: np.ndarray, labels: np.ndarray | None = None,
               labels43: np.ndarray | None = None, mask: np.ndarray | None = None,
               s1: np.ndarray | None = None, label: int | None = None) -> None:
        """Add one patch; the arguments the layout has must be given, the others are ignored."""
        n = len(self._names)
        self._put(self._images, n, image, np.uint16)
        if self._s1 is not None:
            self._put(self._s1, n, s1, np.float32)
        for key, value in (("labels", labels), ("labels43", labels43), ("masks", mask), ("label", label)):
            if key in self._datasets or (key == "labels" and self.layout.labels):
                self._rows[key].append(np.asarray(value, np.uint8))
        self._names.append(name)

    def _put(self, ds: h5py.Dataset, n: int, value: np.ndarray | None, dtype: type) -> None:
        arr = np.ascontiguousarray(value, dtype=np.dtype(dtype).newbyteorder("<"))
        if arr.shape != ds.shape[1:]:
            raise ValueError(f"{self.path}: {ds.name} of shape {arr.shape}, expected {ds.shape[1:]}")
        if self._direct:
            ds.id.write_direct_chunk((n,) + (0,) * (ds.ndim - 1), arr.tobytes())
        else:
            ds[n] = arr

    def close(self) -> None:
        n = len(self._names)
        self._images.resize(n, axis=0)
        if self._s1 is not None:
            self._s1.resize(n, axis=0)
        for key, (dtype, tail) in self._datasets.items():
            rows = self._rows.get("labels" if key == "labels19" else key)
            if key in ("images", "s1", "names") or rows is None:
                continue
            data = np.array(rows, dtype=dtype).reshape(n, *tail)
            self._file.create_dataset(key, data=data, track_times=False,
                                      **(COMPRESSION["gzip"] if key == "masks" else {}))
        self._file.create_dataset("names", data=np.array(self._names, dtype=object),
                                  dtype=h5py.string_dtype("utf-8"), track_times=False)
        self._file.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()
