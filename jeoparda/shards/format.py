"""The ``jeoparda-shards`` HDF5 shard (docs/data-format.md): layout, checksums, verification.

Version 2 is dataset-agnostic: ``images`` uint16 (n, C, H, W) plus whichever targets the data set
has (``labels`` multi-hot, ``masks`` per pixel, ``s1`` Sentinel-1, ``labels43`` for BigEarthNet
v1). Version 1 (BigEarthNet v1 only: ``labels19``, ``labels43``, 12x120x120) stays readable.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.labels import CLASSES19, LABELS43
from jeoparda.sentinel2 import BAND_NAMES, S1_BANDS, TARGET_SIZE

FORMAT = "jeoparda-shards"
VERSION = 2
READABLE_VERSIONS = (1, 2)
#: --compression choices -> h5py filter arguments. lzf is h5py's fast built-in codec.
COMPRESSION: dict[str, dict[str, Any]] = {"none": {}, "gzip": {"compression": "gzip", "compression_opts": 4},
                                          "lzf": {"compression": "lzf"}}


class ShardError(JeopardaError):
    """A shard that does not match the format or the manifest; the message names the file."""


def damaged(path: Path, exc: BaseException) -> ShardError:
    """The one-line error for whatever HDF5 or h5py raised on a damaged file (an OSError, a KeyError
    or RuntimeError from a broken B-tree or object header, a UnicodeDecodeError from a broken name)."""
    if isinstance(exc, ShardError):
        return exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    kind = "unreadable HDF5 file" if isinstance(exc, OSError) else "damaged HDF5 structure"
    return ShardError(f"{path}: {kind} ({text})")


@dataclass(frozen=True)
class Layout:
    """What every shard of one data set holds: image shape and the datasets beside ``images``."""

    bands: tuple[str, ...] = BAND_NAMES
    size: tuple[int, int] = (TARGET_SIZE, TARGET_SIZE)
    labels: int = len(CLASSES19)   # K of ``labels`` (0: none)
    labels43: bool = False
    masks: bool = False
    s1: bool = False
    label: int = 0                 # K of the single-label ``label`` (0: none)
    version: int = VERSION

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (len(self.bands), *self.size)

    @property
    def classes(self) -> int:
        """K: the width of the targets a loader delivers."""
        return self.labels or self.label

    @property
    def label_key(self) -> str:
        """The multi-hot dataset's name: ``labels`` (v2) or ``labels19`` (v1)."""
        return "labels" if self.version >= 2 else "labels19"

    def datasets(self) -> dict[str, tuple[Any, tuple[int, ...]]]:
        """Dataset name -> (dtype or None for strings, shape after the patch axis)."""
        out: dict[str, tuple[Any, tuple[int, ...]]] = {"images": (np.uint16, self.image_shape)}
        if self.labels:
            out[self.label_key] = (np.uint8, (self.labels,))
        if self.labels43:
            out["labels43"] = (np.uint8, (len(LABELS43),))
        if self.label:
            out["label"] = (np.uint8, ())
        if self.masks:
            out["masks"] = (np.uint8, self.size)
        if self.s1:
            out["s1"] = (np.float32, (len(S1_BANDS), *self.size))
        out["names"] = (None, ())
        return out


V1_LAYOUT = Layout(labels43=True, version=1)


def layout_of_manifest(manifest: dict[str, Any]) -> Layout:
    """The layout a (normalised) manifest describes."""
    if manifest["version"] == 1:
        return V1_LAYOUT
    tasks = manifest.get("tasks", [])
    k = len(manifest["classes"])
    return Layout(tuple(manifest["bands"]), (int(manifest["size"][0]), int(manifest["size"][1])),
                  k if "multilabel" in tasks else 0, "labels43" in manifest,
                  "segmentation" in tasks, bool(manifest.get("s1_bands")), k if "singlelabel" in tasks else 0)


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def shard_version(f: h5py.File, path: Path) -> int:
    """The shard's format version; a clear error for anything that is not a jeoparda shard."""
    fmt, ver = (v.item() if isinstance(v, np.generic) else v for v in (f.attrs.get("format"), f.attrs.get("version")))
    if fmt != FORMAT or ver not in READABLE_VERSIONS:
        raise ShardError(f"{path}: not a {FORMAT} shard of version {' or '.join(map(str, READABLE_VERSIONS))} "
                         f"(format={fmt!r}, version={ver!r})")
    return int(ver)


def check_shard_format(path: Path, patches: int | None = None, layout: Layout | None = None) -> None:
    """Raise :class:`ShardError` unless ``path`` is a shard of ``layout`` (default: what its own
    version implies for v1, what it holds for v2) with ``patches`` patches if given."""
    try:
        with h5py.File(path, "r") as f:
            version = shard_version(f, path)
            if layout is None:
                layout = V1_LAYOUT if version == 1 else _layout_in_file(f)
            if version != layout.version:
                raise ShardError(f"{path}: shard version {version}, the manifest says {layout.version}")
            if tuple(str(b) for b in f.attrs.get("bands", [])) != layout.bands:
                raise ShardError(f"{path}: band list differs from the manifest's ({', '.join(layout.bands)})")
            sizes = set()
            for key, (dtype, tail) in layout.datasets().items():
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
    except ShardError:
        raise
    except Exception as exc:  # a damaged file makes HDF5 raise many kinds
        raise damaged(path, exc) from None


def _layout_in_file(f: h5py.File) -> Layout:
    images = f["images"] if "images" in f else None
    shape = tuple(images.shape[2:4]) if images is not None and images.ndim == 4 else (TARGET_SIZE, TARGET_SIZE)
    return Layout(tuple(str(b) for b in f.attrs.get("bands", [])), (int(shape[0]), int(shape[1])),
                  int(f["labels"].shape[1]) if "labels" in f else 0, "labels43" in f, "masks" in f, "s1" in f,
                  int(f.attrs.get("classes", 1)) if "label" in f else 0)


def verify_shard(path: Path, sha256: str, patches: int, layout: Layout | None = None) -> None:
    """Checksum and format check of one shard against its manifest entry."""
    if not os.path.isfile(path):
        raise ShardError(f"{path}: shard file is missing")
    actual = file_sha256(path)
    if actual != sha256:
        raise ShardError(f"{path}: checksum mismatch (manifest {sha256[:12]}…, file {actual[:12]}…)")
    check_shard_format(path, patches, layout)
