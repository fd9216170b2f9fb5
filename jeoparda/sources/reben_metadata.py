"""BigEarthNet v2.0 ("reBEN") metadata: ``metadata.parquet`` and the noisy-patch table beside it.

Columns used: ``patch_id``, ``labels`` (list of 19-class names), ``split`` (train / validation /
test; ours is ``val``), and ``s1_name`` when Sentinel-1 is converted. Other columns (country,
s2v1_name, contains_seasonal_snow, contains_cloud_or_shadow) are read only if present.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.labels import CLASSES19, UnknownClassError, encode_classes
from jeoparda.safe_files import check_regular
from jeoparda.sources.base import TABLE_FILE_LIMIT

METADATA = "metadata.parquet"
NOISY_METADATA = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
REQUIRED = ("patch_id", "labels", "split")
SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "test": "test"}


@dataclass
class Metadata:
    """Rows of one or both tables: names, split (ours), 19-class multi-hot labels, S1 names."""

    names: list[str]
    splits: list[str]
    labels: np.ndarray           # (n, 19) uint8
    s1_names: list[str] | None

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


def _import_pyarrow() -> object:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise JeopardaError("reading BigEarthNet v2.0 metadata needs pyarrow: pip install pyarrow") from None
    return pq


def read_metadata(path: Path, need_s1: bool = False) -> Metadata:
    """Read one metadata table; a clear error naming the file for anything off."""
    pq = _import_pyarrow()
    wanted = [*REQUIRED, *(["s1_name"] if need_s1 else [])]
    try:
        if Path(path).exists():  # a FIFO would block pyarrow, a device feed it forever
            check_regular(path, TABLE_FILE_LIMIT)
        schema = pq.read_schema(path)  # type: ignore[attr-defined]
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise JeopardaError(f"{path}: metadata table lacks column(s) {', '.join(missing)} "
                                f"(has {', '.join(schema.names)})")
        table = pq.read_table(path, columns=wanted)  # type: ignore[attr-defined]
    except JeopardaError:
        raise
    except FileNotFoundError:
        raise JeopardaError(f"{path}: metadata table not found") from None
    except Exception as exc:  # pyarrow raises several kinds for damaged files
        raise JeopardaError(f"{path}: unreadable parquet file ({type(exc).__name__}: {exc})") from None
    columns = table.to_pydict()
    names = [str(n) for n in columns["patch_id"]]
    splits = []
    for name, split in zip(names, columns["split"], strict=True):
        ours = SPLIT_NAMES.get(str(split))
        if ours is None:
            raise JeopardaError(f"{path}: patch {name} has split {split!r} (expected train, validation or test)")
        splits.append(ours)
    labels = np.zeros((len(names), len(CLASSES19)), np.uint8)
    for i, (name, row) in enumerate(zip(names, columns["labels"], strict=True)):
        if row is None or isinstance(row, str):
            raise JeopardaError(f"{path}: patch {name}: 'labels' is not a list of class names")
        try:
            labels[i] = encode_classes(row)
        except UnknownClassError as exc:
            raise JeopardaError(f"{path}: patch {name}: {exc}") from None
    s1 = [str(n) for n in columns["s1_name"]] if need_s1 else None
    if len(set(names)) != len(names):
        dup = Counter(names).most_common(1)[0][0]
        raise JeopardaError(f"{path}: patch {dup} is listed more than once")
    return Metadata(names, splits, labels, s1)


def concat(a: Metadata, b: Metadata) -> Metadata:
    return Metadata(a.names + b.names, a.splits + b.splits, np.concatenate([a.labels, b.labels]),
                    None if a.s1_names is None or b.s1_names is None else a.s1_names + b.s1_names)
