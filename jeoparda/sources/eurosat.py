"""EuroSAT (Helber et al.): 27,000 Sentinel-2 L1C images, 64x64, 13 bands, one of ten classes.

Layout ``EuroSAT_MS/<Class>/<Class>_<n>.tif`` (also nested in the common zip as
``ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/...``). Each file holds the 13
bands pixel-interleaved as uint16, in the order B01 ... B12 with B10 in place and **B8A last**;
shards use the canonical order (docs/data-format.md) with B10 between B09 and B11. Images are already on one
10 m grid, so nothing is resampled.

Splits: ``--splits DIR`` with the widely used ``eurosat-train.txt``, ``eurosat-val.txt``,
``eurosat-test.txt`` (16,200 / 5,400 / 5,400 names; a ``.jpg`` in them means the ``.tif`` of the
same stem); without them a deterministic split stratified by class, 70/20/10 as in the ResNet-D
study: within each class the images are ordered by the SHA-256 of their name and cut.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.sentinel2 import BAND_NAMES13
from jeoparda.sources.base import TABLE_FILE_LIMIT, Fields, Listing, Patch, PatchError, Source, read_bounded
from jeoparda.sources.geotiff import TiffReadError, read_raster
from jeoparda.sources.splits import SPLITS

#: The ten classes, index = alphabetical order (as the data set is distributed).
CLASSES: tuple[str, ...] = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                            "PermanentCrop", "Residential", "River", "SeaLake")
#: Images per class in the full data set.
CLASS_SIZES = (3000, 3000, 3000, 2500, 2500, 2000, 2500, 3000, 2500, 3000)
#: Band order inside the files.
FILE_BANDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12",
                               "B8A")
TO_CANONICAL = [FILE_BANDS.index(b) for b in BAND_NAMES13]
SIZE = 64
SPLIT_PERCENT = {"train": 70, "val": 20, "test": 10}
SPLIT_FILES = {"train": "eurosat-train.txt", "val": "eurosat-val.txt", "test": "eurosat-test.txt"}
NESTED = Path("ds/images/remote_sensing/otherDatasets/sentinel_2/tif")


def class_folders(folder: Path) -> list[Path]:
    """Subfolders holding .tif files."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.tif")))


def find_root(source: Path) -> Path | None:
    """The folder whose subfolders are the class folders, or None."""
    for candidate in (source, source / "EuroSAT_MS", source / NESTED, source / "EuroSAT_MS" / NESTED):
        if candidate.is_dir() and any(p.name in CLASSES for p in class_folders(candidate)):
            return candidate
    return None


def _stem(line: str) -> str:
    return Path(line.strip().split(",")[0]).stem


class EuroSAT(Source):
    dataset = "eurosat"
    kind = "EuroSAT (13-band GeoTIFFs per class folder)"
    classes = CLASSES
    fields = Fields(label=len(CLASSES))
    bands = BAND_NAMES13
    size = (SIZE, SIZE)
    resamples = False

    def __init__(self, source: Path, splits_dir: Path | None = None) -> None:
        self.source = Path(source)
        root = find_root(self.source)
        if root is None:
            raise JeopardaError(f"{source}: no EuroSAT class folders (AnnualCrop/, Forest/, ...) found in it, "
                                f"in EuroSAT_MS/ or in {NESTED}/")
        self.root = root
        unknown = [p for p in class_folders(root) if p.name not in CLASSES]
        if unknown:
            raise JeopardaError(f"{unknown[0]}: class folder {unknown[0].name!r} is not one of the ten EuroSAT "
                                f"classes ({', '.join(CLASSES)})")
        self.splits_dir = splits_dir

    def present(self) -> set[str]:
        return {p.stem for c in CLASSES if (self.root / c).is_dir() for p in (self.root / c).glob("*.tif")}

    def listing(self) -> Listing:
        if self.splits_dir:
            splits = {}
            for split, name in SPLIT_FILES.items():
                path = Path(self.splits_dir) / name
                try:
                    lines = read_bounded(path, TABLE_FILE_LIMIT).decode("utf-8").splitlines()
                except OSError as exc:
                    raise JeopardaError(f"{path}: cannot read split list ({exc.strerror or exc})") from None
                except UnicodeDecodeError:
                    raise JeopardaError(f"{path}: split list is not UTF-8 text") from None
                splits[split] = list(dict.fromkeys(_stem(x) for x in lines if x.strip()))
            return Listing(splits, str(Path(self.splits_dir).resolve()))
        return Listing(stratified_split(sorted(self.present())), "class-stratified 70/20/10 by name hash")

    def read(self, name: str) -> Patch:
        cls = name.rsplit("_", 1)[0]
        path = self.root / cls / f"{name}.tif"
        if cls not in CLASSES:
            raise PatchError(name, path, f"class {cls!r} is not one of the ten EuroSAT classes")
        try:
            arr = read_raster(path)
        except FileNotFoundError:
            raise PatchError(name, path, "missing image file") from None
        except TiffReadError as exc:
            raise PatchError(name, path, str(exc)) from None
        if arr.shape != (SIZE, SIZE, len(FILE_BANDS)):
            raise PatchError(name, path, f"image has shape {'x'.join(map(str, arr.shape))}, expected "
                                         f"{SIZE}x{SIZE}x{len(FILE_BANDS)} (13 bands, 64x64)")
        if arr.dtype != np.uint16:
            raise PatchError(name, path, f"image is {arr.dtype}, expected uint16")
        image = np.ascontiguousarray(arr.transpose(2, 0, 1)[TO_CANONICAL])
        return Patch(name, image=image, label=CLASSES.index(cls))


def stratified_split(names: list[str]) -> dict[str, list[str]]:
    """70/20/10 within each class, by the SHA-256 of the name; every split sorted."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for cls in CLASSES:
        mine = sorted((n for n in names if n.rsplit("_", 1)[0] == cls),
                      key=lambda n: hashlib.sha256(n.encode()).digest())
        n_train = round(len(mine) * SPLIT_PERCENT["train"] / 100)
        n_val = round(len(mine) * SPLIT_PERCENT["val"] / 100)
        out["train"] += mine[:n_train]
        out["val"] += mine[n_train:n_train + n_val]
        out["test"] += mine[n_train + n_val:]
    return {s: sorted(v) for s, v in out.items()}
