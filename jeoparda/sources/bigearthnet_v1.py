"""Reader for the BigEarthNet-S2 v1.0 archive layout (one GeoTIFF per band, labels JSON).

``<root>/<patch>/<patch>_<band>.tif`` and ``<root>/<patch>/<patch>_labels_metadata.json``, where
root is the ``BigEarthNet-v1.0`` folder. Damage in a patch raises :class:`PatchError` naming the
file and the problem; the converter decides whether that rejects the patch or ends the run.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.labels import CLASSES19, UnknownLabelError, encode_labels
from jeoparda.sources.base import LABELS_FILE_LIMIT, Fields, Listing, Patch, PatchError, Source, read_bounded
from jeoparda.sources.geotiff import read_s2_bands
from jeoparda.sources.splits import HASH_SPLIT_NOTE, hash_split, read_name_list, read_split_dir

ARCHIVE_DIRNAME = "BigEarthNet-v1.0"
LABELS_SUFFIX = "_labels_metadata.json"
METADATA_KEYS = ("labels", "coordinates", "projection", "tile_source", "acquisition_date")


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
        meta = json.loads(read_bounded(path, LABELS_FILE_LIMIT).decode("utf-8"))
    except FileNotFoundError:
        raise PatchError(patch, path, "missing labels JSON") from None
    except JeopardaError as exc:  # not a regular file, or too large: refused unread
        raise PatchError(patch, path, str(exc).removeprefix(f"{path}: ")) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PatchError(patch, path, f"unreadable labels JSON ({exc})") from None
    names = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise PatchError(patch, path, "labels JSON has no list of label names under 'labels'")
    try:
        return encode_labels(names)
    except UnknownLabelError as exc:
        raise PatchError(patch, path, str(exc)) from None


class BigEarthNetV1(Source):
    """The 2019 archive: split CSVs (``--splits`` or ``SOURCE/splits``), noisy lists by ``--exclude``."""

    dataset = "bigearthnet-v1"
    kind = "BigEarthNet-S2 v1.0 (GeoTIFF per band, labels JSON)"
    classes = CLASSES19
    fields = Fields(labels=len(CLASSES19), labels43=True)

    def __init__(self, source: Path, splits_dir: Path | None = None, excludes: tuple[Path, ...] = ()) -> None:
        self.source = Path(source)
        self.root = locate_root(source)
        self.splits_dir = splits_dir
        self.excludes = excludes

    def listing(self) -> Listing:
        candidates = [self.splits_dir] if self.splits_dir else [self.source / "splits", self.root / "splits"]
        splits, split_source = None, ""
        for split_dir in candidates:
            if split_dir is not None and (self.splits_dir or split_dir.is_dir()):
                splits, split_source = read_split_dir(split_dir), str(Path(split_dir).resolve())
                break
        if splits is None:
            warnings.warn(f"no split lists given and no splits/ folder in {self.source}: splitting by name "
                          f"hash {HASH_SPLIT_NOTE} (train/val/test)", stacklevel=2)
            splits, split_source = hash_split(list_patches(self.root)), f"name-hash {HASH_SPLIT_NOTE}"
        noisy: set[str] = set()
        for path in self.excludes:
            noisy.update(read_name_list(path))
        excluded = sorted(n for names in splits.values() for n in names if n in noisy)
        kept = {s: [n for n in names if n not in noisy] for s, names in splits.items()}
        return Listing(kept, split_source, excluded)

    def present(self) -> set[str]:
        return set(list_patches(self.root))

    def read(self, name: str) -> Patch:
        if not (self.root / name).is_dir():
            raise PatchError(name, self.root / name, "patch folder not found in the archive")
        y43, y19 = read_labels(self.root, name)
        bands = read_s2_bands(name, lambda band: band_path(self.root, name, band))
        return Patch(name, bands, labels=y19, labels43=y43)
