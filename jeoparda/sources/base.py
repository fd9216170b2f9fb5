"""What every archive reader produces and promises: ``Patch`` records at native resolution.

A source knows its archive's layout. It says which patches the archive lists (splits, noisy
patches), which of them are present, and reads one patch at a time; converting to the 10 m grid
and writing shards is the converter's job. Sources are pickled into worker processes, so they
hold paths and open files lazily.

Archive files are read only when they are regular files within a size bound per kind of file
(:func:`read_bounded`, docs/reliability.md): a band file that is a link to ``/dev/zero``, a FIFO or
a device is a damaged patch with a reason, never read, never waited on.
"""
from __future__ import annotations

import errno
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jeoparda.safe_files import UnsafePathError, open_regular
from jeoparda.sentinel2 import BAND_NAMES, TARGET_SIZE

_MIB = 1 << 20
#: The most bytes one archive file of a kind may hold, far above any real one: a band GeoTIFF, a
#: reference map or a EuroSAT image (a 120x120 uint16 band is ~29 KB, a 64x64x13 image ~107 KB) ...
BAND_FILE_LIMIT = 64 * _MIB
#: ... a patch's labels JSON (~1 KB) ...
LABELS_FILE_LIMIT = 16 * _MIB
#: ... and a split list or metadata table (BigEarthNet v2.0's metadata.parquet is tens of MB).
TABLE_FILE_LIMIT = 4096 * _MIB


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file (a link to one is fine) of at most ``limit`` bytes.
    A device, a FIFO, a folder or a larger file raises :class:`jeoparda.safe_files.UnsafePathError`
    (a JeopardaError naming the file) without blocking or reading; a missing file FileNotFoundError."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    with open_regular(path, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:  # the file grew after it was checked
        raise UnsafePathError(f"{path}: grew past {limit} bytes while read; refused")
    return data


class PatchError(Exception):
    """A damaged patch: ``file`` is the offending path, ``reason`` a short description."""

    def __init__(self, patch: str, file: Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.patch = patch
        self.file = file
        self.reason = reason


@dataclass(frozen=True)
class Patch:
    """One patch as the archive stores it: optical bands at native resolution (canonical order),
    and whatever targets and extra modalities the archive has."""

    name: str
    bands: tuple[np.ndarray, ...] = ()   # native resolution, canonical order (resampled by convert)
    image: np.ndarray | None = None      # or: (C, H, W) uint16 already on the target grid
    labels: np.ndarray | None = None     # (K,) multi-hot uint8
    label: int | None = None             # single-label: class index
    labels43: np.ndarray | None = None   # (43,) multi-hot uint8, BigEarthNet v1 only
    mask: np.ndarray | None = None       # (H, W) uint8 class index per pixel, 255 = no class
    s1: np.ndarray | None = None         # (2, H, W) float32 VV, VH in dB


@dataclass(frozen=True)
class Fields:
    """The datasets every shard of a conversion carries besides ``images`` and ``names``."""

    labels: int = 0          # K of the multi-hot ``labels`` (0: none)
    label: int = 0           # K of the single-label class index ``label`` (0: none)
    labels43: bool = False
    masks: bool = False
    s1: bool = False


@dataclass
class Listing:
    """What the archive's lists say: patches per split, and the noisy patches left out."""

    splits: dict[str, list[str]]
    split_source: str
    excluded: list[str] = field(default_factory=list)
    noisy: dict[str, object] = field(default_factory=dict)  # {"count", "included"} where known


class Source(ABC):
    """One archive kind. Subclasses set ``dataset``, ``classes``, ``root`` and ``fields``."""

    dataset: str
    kind: str
    classes: tuple[str, ...]
    root: Path
    fields: Fields
    #: Bands the source delivers, canonical order, and the grid they end up on (convert resamples
    #: native-resolution ``Patch.bands`` to it; ``Patch.image`` is on it already).
    bands: tuple[str, ...] = BAND_NAMES
    size: tuple[int, int] = (TARGET_SIZE, TARGET_SIZE)
    resamples: bool = True  # False: the archive is on one grid already (--resample does not apply)

    @property
    def tasks(self) -> list[str]:
        """What shards of this source can train (the manifest's ``tasks``, docs/data-format.md)."""
        f = self.fields
        return (["multilabel"] if f.labels else []) + (["singlelabel"] if f.label else []) \
            + (["segmentation"] if f.masks else [])

    @abstractmethod
    def listing(self) -> Listing:
        """Patches per split (before removing absent ones) and the excluded noisy patches."""

    @abstractmethod
    def present(self) -> set[str]:
        """Names of the patches that exist in the archive."""

    @abstractmethod
    def read(self, name: str) -> Patch:
        """Read and validate one patch; raises :class:`PatchError` on damage."""

    @property
    def store(self) -> Path:
        """Where the patches are looked up (what an error about absent patches names)."""
        return self.root

    def close(self) -> None:  # noqa: B027  (a default, not an abstract method: most sources hold nothing open)
        """Release open files (an LMDB environment); the source opens them again when read."""
