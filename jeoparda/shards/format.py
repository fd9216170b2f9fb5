"""The ``jeoparda-shards`` v1 HDF5 shard: writing, checksums and verification (docs/data-format.md).

Shards are written deterministically (no HDF5 object time stamps, fixed creation order), so the
same patches give byte-identical files whatever process writes them.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.labels import CLASSES19, LABELS43
from jeoparda.sentinel2 import BAND_NAMES, TARGET_SIZE

FORMAT = "jeoparda-shards"
VERSION = 1
IMAGE_SHAPE = (len(BAND_NAMES), TARGET_SIZE, TARGET_SIZE)
_CHUNK_BYTES = 2 * IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
#: --compression choices -> h5py filter arguments. lzf is h5py's fast built-in codec.
COMPRESSION = {"none": {}, "gzip": {"compression": "gzip", "compression_opts": 4},
               "lzf": {"compression": "lzf"}}


class ShardError(JeopardaError):
    """A shard that does not match the format or the manifest; the message names the file."""


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


class ShardWriter:
    """Appends patches to a new shard file; ``close()`` writes labels and names and trims."""

    def __init__(self, path: Path, capacity: int, compression: str = "none") -> None:
        if compression not in COMPRESSION:
            raise ValueError(f"unknown compression {compression!r}; choose {', '.join(COMPRESSION)}")
        self.path = Path(path)
        self._file = h5py.File(self.path, "w", track_order=False)
        self._file.attrs["format"] = FORMAT
        self._file.attrs["version"] = VERSION
        self._file.attrs["bands"] = list(BAND_NAMES)
        self._images = self._file.create_dataset(
            "images", shape=(capacity, *IMAGE_SHAPE), maxshape=(None, *IMAGE_SHAPE),
            dtype=np.uint16, chunks=(1, *IMAGE_SHAPE), track_times=False,
            **COMPRESSION[compression])
        self._labels19: list[np.ndarray] = []
        self._labels43: list[np.ndarray] = []
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._names)

    def append(self, name: str, image: np.ndarray, labels43: np.ndarray, labels19: np.ndarray) -> None:
        self._images[len(self._names)] = image
        self._names.append(name)
        self._labels43.append(labels43)
        self._labels19.append(labels19)

    def close(self) -> None:
        n = len(self._names)
        self._images.resize(n, axis=0)
        for key, rows, width in (("labels19", self._labels19, len(CLASSES19)),
                                 ("labels43", self._labels43, len(LABELS43))):
            data = np.array(rows, dtype=np.uint8).reshape(n, width)
            self._file.create_dataset(key, data=data, track_times=False)
        self._file.create_dataset("names", data=np.array(self._names, dtype=object),
                                  dtype=h5py.string_dtype("utf-8"), track_times=False)
        self._file.close()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()


def check_shard_format(path: Path, patches: int | None = None) -> None:
    """Raise :class:`ShardError` unless ``path`` is a v1 shard (with ``patches`` patches if given)."""
    try:
        with h5py.File(path, "r") as f:
            fmt, ver = f.attrs.get("format"), f.attrs.get("version")
            if fmt != FORMAT or ver != VERSION:
                raise ShardError(f"{path}: not a {FORMAT} v{VERSION} shard (format={fmt!r}, version={ver!r})")
            if [str(b) for b in f.attrs.get("bands", [])] != list(BAND_NAMES):
                raise ShardError(f"{path}: band list differs from the canonical 12-band order")
            expected = {"images": (np.uint16, IMAGE_SHAPE), "labels19": (np.uint8, (len(CLASSES19),)),
                        "labels43": (np.uint8, (len(LABELS43),)), "names": (None, ())}
            sizes = set()
            for key, (dtype, tail) in expected.items():
                if key not in f:
                    raise ShardError(f"{path}: dataset '{key}' is missing")
                ds = f[key]
                if ds.shape[1:] != tail or (dtype is not None and ds.dtype != dtype):
                    raise ShardError(f"{path}: dataset '{key}' has shape {ds.shape} and type {ds.dtype}")
                sizes.add(ds.shape[0])
            if len(sizes) != 1:
                raise ShardError(f"{path}: datasets disagree on the number of patches ({sorted(sizes)})")
            if patches is not None and sizes != {patches}:
                raise ShardError(f"{path}: holds {sizes.pop()} patches, the manifest says {patches}")
    except OSError as exc:
        raise ShardError(f"{path}: unreadable HDF5 file ({exc})") from None


def verify_shard(path: Path, sha256: str, patches: int) -> None:
    """Checksum and format check of one shard against its manifest entry."""
    if not os.path.isfile(path):
        raise ShardError(f"{path}: shard file is missing")
    actual = file_sha256(path)
    if actual != sha256:
        raise ShardError(f"{path}: checksum mismatch (manifest {sha256[:12]}…, file {actual[:12]}…)")
    check_shard_format(path, patches)


class ShardReader:
    """Batched reads from one shard: images straight into a caller's buffer, labels up front.

    Patches are stored one chunk each, in order. For uncompressed shards the byte offset of every
    chunk is looked up once (HDF5's chunk index); ShardWriter lays chunks out back to back, with
    an occasional index node between them, so a run of patches is read with one ``preadv`` per
    contiguous stretch, straight into the destination. Compressed shards go through HDF5. Both
    paths give the same array.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise ShardError(f"{path}: unreadable HDF5 file ({exc})") from None
        if self._file.attrs.get("format") != FORMAT or self._file.attrs.get("version") != VERSION:
            self._file.close()
            raise ShardError(f"{path}: not a {FORMAT} v{VERSION} shard")
        self._images = self._file["images"]
        self.labels19 = self._file["labels19"][...]
        self.labels43 = self._file["labels43"][...]
        self.names = [n.decode() for n in self._file["names"][...]]
        self._offsets = self._chunk_offsets()
        self._fd = os.open(self.path, os.O_RDONLY) if self._offsets is not None else None

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
            if info.chunk_offset[0] != i or info.size != _CHUNK_BYTES or info.filter_mask:
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
        """Images ``start:stop`` as uint16 (n, 12, 120, 120), into ``out[:n]`` when given."""
        n = stop - start
        out = np.empty((n, *IMAGE_SHAPE), np.uint16) if out is None else out[:n]
        if n == 0:
            return out
        if self._fd is not None and out.flags.c_contiguous:
            offs = self._offsets[start:stop]
            cuts = np.flatnonzero(np.diff(offs) != _CHUNK_BYTES) + 1
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, n]):
                view = memoryview(out[a:b]).cast("B")
                if os.preadv(self._fd, [view], int(offs[a])) != view.nbytes:
                    raise ShardError(f"{self.path}: short read at patch {start + a}; file truncated?")
        else:
            self._images.read_direct(out, np.s_[start:stop])
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._file.close()

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
