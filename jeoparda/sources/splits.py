"""Split lists (train/val/test CSVs), noisy-patch exclusion lists and the fallback hash split."""
from __future__ import annotations

import hashlib
from pathlib import Path

from jeoparda.errors import JeopardaError
from jeoparda.sources.base import TABLE_FILE_LIMIT, read_bounded

SPLITS = ("train", "val", "test")
#: Fallback split when no split CSVs are given: percentage of patches per split, by name hash.
HASH_SPLIT_PERCENT = {"train": 70, "val": 15, "test": 15}


def read_name_list(path: Path) -> list[str]:
    """Patch names from a one-name-per-line CSV (first column; blank lines ignored)."""
    try:
        text = read_bounded(Path(path), TABLE_FILE_LIMIT).decode("utf-8")
    except OSError as exc:
        raise JeopardaError(f"{path}: cannot read patch list ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise JeopardaError(f"{path}: patch list is not UTF-8 text") from None
    names = []
    for line in text.splitlines():
        name = line.split(",", 1)[0].strip()
        if name:
            names.append(name)
    return names


def read_split_dir(split_dir: Path) -> dict[str, list[str]]:
    """{split: names} from ``train.csv``, ``val.csv``, ``test.csv``; a patch may be in one only."""
    out: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for split in SPLITS:
        path = Path(split_dir) / f"{split}.csv"
        if not path.exists():  # a FIFO or a device is refused when read, never waited on
            raise JeopardaError(f"{path}: split file not found (expected train.csv, val.csv, test.csv)")
        names = list(dict.fromkeys(read_name_list(path)))
        for name in names:
            if name in seen:
                raise JeopardaError(f"{path}: patch {name} is also listed in {seen[name]}.csv")
            seen[name] = split
        out[split] = names
    return out


def hash_split(names: list[str]) -> dict[str, list[str]]:
    """Deterministic split by the SHA-256 of each name (70/15/15), stable when patches are added."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    cut_train = HASH_SPLIT_PERCENT["train"]
    cut_val = cut_train + HASH_SPLIT_PERCENT["val"]
    for name in names:
        bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % 100
        out["train" if bucket < cut_train else "val" if bucket < cut_val else "test"].append(name)
    return out

HASH_SPLIT_NOTE = "/".join(str(v) for v in HASH_SPLIT_PERCENT.values())
