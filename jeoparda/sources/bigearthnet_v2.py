"""BigEarthNet v2.0 ("reBEN", 2024) as GeoTIFF trees, with reference maps and Sentinel-1.

Layout (SOURCE holds the parquet tables and the trees)::

    metadata.parquet, metadata_for_patches_with_snow_cloud_or_shadow.parquet
    BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_<band>.tif       uint16, native resolution
    BigEarthNet-S1/<product>/<s1_name>/<s1_name>_{VV,VH}.tif       float32 dB, 120x120
    Reference_Maps/<tile>/<patch_id>/<patch_id>_reference_map.tif  uint16 CORINE codes, 120x120

``tile`` is the patch id without its last two parts (``_<col>_<row>``), ``product`` the S1 name
without its last three. What v2 shares with the LMDB layout (metadata, maps) lives in
:class:`ReBENSource`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.labels import CLASSES19, corine_lookup
from jeoparda.sentinel2 import S1_BANDS, TARGET_SIZE
from jeoparda.sources.base import Fields, Listing, Patch, PatchError, Source
from jeoparda.sources.geotiff import read_checked, read_s2_bands
from jeoparda.sources.reben_metadata import METADATA, NOISY_METADATA, Metadata, concat, read_metadata
from jeoparda.sources.splits import SPLITS, read_split_dir

S2_DIR, S1_DIR, MAPS_DIR = "BigEarthNet-S2", "BigEarthNet-S1", "Reference_Maps"
_UNKNOWN = 254  # corine_lookup's marker for a code outside the table


def tile_of(patch_id: str) -> str:
    return patch_id.rsplit("_", 2)[0]


def s1_product_of(s1_name: str) -> str:
    return s1_name.rsplit("_", 3)[0]


def map_path(maps: Path, patch_id: str) -> Path:
    return maps / tile_of(patch_id) / patch_id / f"{patch_id}_reference_map.tif"


def codes_to_classes(patch: str, path: Path, codes: np.ndarray) -> np.ndarray:
    """(120, 120) CORINE codes -> uint8 class indices (255 = no class); unknown codes are damage."""
    if codes.shape != (TARGET_SIZE, TARGET_SIZE):
        got = "x".join(str(s) for s in codes.shape)
        raise PatchError(patch, path, f"reference map has size {got}, expected {TARGET_SIZE}x{TARGET_SIZE}")
    if codes.dtype.kind not in "ui" or codes.min() < 0 or codes.max() > 65535:
        raise PatchError(patch, path, f"reference map is {codes.dtype}, expected integer CORINE codes")
    classes = _LOOKUP[codes.astype(np.uint16, copy=False)]
    if (classes == _UNKNOWN).any():
        bad = int(codes[classes == _UNKNOWN][0])
        raise PatchError(patch, path, f"reference map holds unknown CORINE code {bad}")
    return classes


_LOOKUP = corine_lookup()


class ReBENSource(Source):
    """What the GeoTIFF and LMDB layouts of BigEarthNet v2.0 share: metadata, splits, maps."""

    dataset = "bigearthnet-v2"
    classes = CLASSES19

    def __init__(self, source: Path, *, with_s1: bool = False, maps: Path | None = None,
                 include_noisy: bool = False, splits_dir: Path | None = None) -> None:
        self.source = self.root = Path(source)
        self.with_s1, self.maps, self.include_noisy, self.splits_dir = with_s1, maps, include_noisy, splits_dir
        self.fields = Fields(labels=len(CLASSES19), masks=maps is not None, s1=with_s1)
        self._meta: tuple[Metadata, dict[str, int]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_meta": None}  # each process reads the tables itself

    def _tables(self) -> tuple[Path, Path]:
        return self.source / METADATA, self.source / NOISY_METADATA

    def metadata(self) -> tuple[Metadata, dict[str, int]]:
        """Rows of metadata.parquet (and the noisy table with --include-noisy), by name."""
        if self._meta is None:
            main, noisy = self._tables()
            meta = read_metadata(main, self.with_s1)
            if self.include_noisy:
                if not noisy.is_file():
                    raise JeopardaError(f"{noisy}: not found; --include-noisy needs the noisy-patch table")
                meta = concat(meta, read_metadata(noisy, self.with_s1))
            self._meta = (meta, meta.index())
        return self._meta

    def _noisy_names(self) -> list[str] | None:
        noisy = self._tables()[1]
        return read_metadata(noisy).names if noisy.is_file() else None

    def listing(self) -> Listing:
        meta, _ = self.metadata()
        if self.splits_dir:
            splits = read_split_dir(self.splits_dir)
            known = set(meta.names)
            for names in splits.values():
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise JeopardaError(f"{self.splits_dir}: patch {unknown[0]} is not in {self._tables()[0]}")
            source = str(Path(self.splits_dir).resolve())
        else:
            splits = {s: [] for s in SPLITS}
            for name, split in zip(meta.names, meta.splits, strict=True):
                splits[split].append(name)
            source = str(self._tables()[0].resolve())
        noisy = self._noisy_names()
        excluded = sorted(noisy) if noisy is not None and not self.include_noisy else []
        return Listing(splits, source, excluded, {"count": None if noisy is None else len(noisy),
                                                  "included": self.include_noisy})

    def labels_of(self, name: str) -> np.ndarray:
        meta, index = self.metadata()
        return meta.labels[index[name]]

    def s1_name_of(self, name: str) -> str:
        meta, index = self.metadata()
        assert meta.s1_names is not None
        return meta.s1_names[index[name]]

    def read_mask(self, name: str) -> np.ndarray | None:
        if self.maps is None:
            return None
        path = map_path(self.maps, name)
        return codes_to_classes(name, path, read_checked(name, path, "reference map"))


def check_s1(patch: str, file: Path, arrays: list[np.ndarray]) -> np.ndarray:
    """(2, 120, 120) float32 from the VV and VH arrays, validated."""
    for name, arr in zip(S1_BANDS, arrays, strict=True):
        if arr.shape != (TARGET_SIZE, TARGET_SIZE):
            got = "x".join(str(s) for s in arr.shape)
            raise PatchError(patch, file, f"Sentinel-1 {name} has size {got}, expected {TARGET_SIZE}x{TARGET_SIZE}")
        if arr.dtype.kind != "f":
            raise PatchError(patch, file, f"Sentinel-1 {name} is {arr.dtype}, expected float (dB)")
    return np.stack(arrays).astype(np.float32, copy=False)


class BigEarthNetV2(ReBENSource):
    """The GeoTIFF tree as distributed (BigEarthNet-S2, -S1, Reference_Maps)."""

    kind = "BigEarthNet v2.0 (GeoTIFF tree)"

    def __init__(self, source: Path, **kw: Any) -> None:
        super().__init__(source, **kw)
        self.s2 = self.source / S2_DIR
        if not self.s2.is_dir():
            raise JeopardaError(f"{self.source}: no {S2_DIR}/ folder (BigEarthNet v2.0 GeoTIFF layout)")
        self.s1 = self.source / S1_DIR
        if self.with_s1 and not self.s1.is_dir():
            raise JeopardaError(f"{self.source}: --with-s1 given but there is no {S1_DIR}/ folder")

    @property
    def store(self) -> Path:
        return self.s2

    def present(self) -> set[str]:
        names: set[str] = set()
        with os.scandir(self.s2) as tiles:
            for tile in tiles:
                if tile.is_dir():
                    with os.scandir(tile.path) as patches:
                        names.update(p.name for p in patches if p.is_dir())
        return names

    def read(self, name: str) -> Patch:
        folder = self.s2 / tile_of(name) / name
        bands = read_s2_bands(name, lambda band: folder / f"{name}_{band}.tif")
        s1 = None
        if self.with_s1:
            s1_name = self.s1_name_of(name)
            s1_folder = self.s1 / s1_product_of(s1_name) / s1_name
            arrays = [read_checked(name, s1_folder / f"{s1_name}_{b}.tif", f"Sentinel-1 {b}") for b in S1_BANDS]
            s1 = check_s1(name, s1_folder, arrays)
        return Patch(name, bands, labels=self.labels_of(name), mask=self.read_mask(name), s1=s1)

