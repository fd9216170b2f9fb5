"""Reader for the BigEarthNet-S2 v1.0 archive layout (one GeoTIFF per band, labels JSON).

``<root>/<patch>/<patch>_<band>.tif`` and ``<root>/<patch>/<patch>_labels_metadata.json``, where
root is the ``BigEarthNet-v1.0`` folder. Damage in a patch raises :class:`PatchError` naming the
file and the problem; the converter decides whether that rejects the patch or ends the run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jeoparda.sources.geotiff import TiffReadError, read_band
from jeoparda.convert.resample import upsample
from jeoparda.errors import JeopardaError
from jeoparda.labels import UnknownLabelError, encode_labels
from jeoparda.sentinel2 import BANDS, TARGET_SIZE, band_indices

ARCHIVE_DIRNAME = "BigEarthNet-v1.0"
LABELS_SUFFIX = "_labels_metadata.json"
METADATA_KEYS = ("labels", "coordinates", "projection", "tile_source", "acquisition_date")


class PatchError(Exception):
    """A damaged patch: ``file`` is the offending path, ``reason`` a short description."""

    def __init__(self, patch: str, file: Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.patch = patch
        self.file = file
        self.reason = reason


@dataclass(frozen=True)
class Patch:
    """One patch brought to the 10 m grid: (12, 120, 120) uint16 and multi-hot labels."""

    name: str
    image: np.ndarray
    labels43: np.ndarray
    labels19: np.ndarray


def locate_root(source: Path) -> Path:
    """The ``BigEarthNet-v1.0`` folder, given either it or the folder that holds it."""
    source = Path(source)
    if not source.is_dir():
        raise JeopardaError(f"{source}: archive folder not found")
    nested = source / ARCHIVE_DIRNAME
    return nested if nested.is_dir() else source


def list_patches(root: Path) -> list[str]:
    """All patch folder names under the archive root, sorted."""
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def band_path(root: Path, patch: str, band: str) -> Path:
    return root / patch / f"{patch}_{band}.tif"


def labels_path(root: Path, patch: str) -> Path:
    return root / patch / f"{patch}{LABELS_SUFFIX}"


def read_labels(root: Path, patch: str) -> tuple[np.ndarray, np.ndarray]:
    """43- and 19-class multi-hot vectors from the patch's labels JSON."""
    path = labels_path(root, patch)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PatchError(patch, path, "missing labels JSON") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PatchError(patch, path, f"unreadable labels JSON ({exc})") from None
    names = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise PatchError(patch, path, "labels JSON has no list of label names under 'labels'")
    try:
        return encode_labels(names)
    except UnknownLabelError as exc:
        raise PatchError(patch, path, str(exc)) from None


def read_raw_bands(root: Path, patch: str) -> list[np.ndarray]:
    """The 12 bands at native resolution, validated for dtype and size."""
    out = []
    for band in BANDS:
        path = band_path(root, patch, band.name)
        try:
            arr = read_band(path)
        except FileNotFoundError:
            raise PatchError(patch, path, f"missing band {band.name}") from None
        except TiffReadError as exc:
            raise PatchError(patch, path, str(exc)) from None
        expected = (band.native_size, band.native_size)
        if arr.shape != expected:
            raise PatchError(patch, path, f"band {band.name} has size {arr.shape[0]}x{arr.shape[1]}, "
                                          f"expected {expected[0]}x{expected[1]}")
        if arr.dtype != np.uint16:
            raise PatchError(patch, path, f"band {band.name} is {arr.dtype}, expected uint16")
        out.append(arr)
    return out


def to_10m(raw: list[np.ndarray], method: str) -> np.ndarray:
    """Stack native-resolution bands into (12, 120, 120); 10 m bands are copied unchanged."""
    image = np.empty((len(BANDS), TARGET_SIZE, TARGET_SIZE), dtype=np.uint16)
    for res in (10, 20, 60):
        idx = band_indices(res)
        image[list(idx)] = upsample(np.stack([raw[i] for i in idx]), TARGET_SIZE, method)
    return image


def read_patch(root: Path, patch: str, method: str) -> Patch:
    """Read, validate and resample one patch; raises :class:`PatchError` on damage."""
    if not (root / patch).is_dir():
        raise PatchError(patch, root / patch, "patch folder not found in the archive")
    y43, y19 = read_labels(root, patch)
    image = to_10m(read_raw_bands(root, patch), method)
    return Patch(patch, image, y43, y19)
