"""The types and ranges of every ``manifest.json`` field a reader uses (docs/data-format.md), and
shard paths kept inside the data set: one :class:`JeopardaError` naming the file and the field."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import inside

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Bad(Exception):
    """A field that is not what it must be: ``where`` (the field) and ``what`` (what it must be)."""

    def __init__(self, where: str, what: str, value: Any) -> None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        super().__init__(f"field {where} must be {what}, got {shown}")


def _count(value: Any, where: str, least: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise _Bad(where, f"an integer >= {least}", value)
    return value


def _number(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise _Bad(where, "a finite number", value)
    return float(value)


def _texts(value: Any, where: str, least: int = 0) -> list[str]:
    if not isinstance(value, list) or len(value) < least or not all(isinstance(v, str) for v in value):
        raise _Bad(where, f"a list of {'at least one ' if least else ''}text", value)
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(where, "an object", value)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(where, "text", value)
    return value


def _size(value: Any, version: int) -> None:
    if version == 1:
        _count(value, "size", 1)
    elif (not isinstance(value, list) or len(value) != 2
          or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise _Bad("size", "[H, W] (two integers >= 1)", value)


def _band_stats(value: Any, channels: int) -> None:
    stats = _object(value, "band_stats")
    if stats.get("mean") is None and stats.get("std") is None:
        return  # an empty train split
    for key in ("mean", "std"):
        numbers = stats.get(key)
        if not isinstance(numbers, list) or len(numbers) < channels:
            raise _Bad(f"band_stats.{key}", f"a list of {channels} or more numbers (or null)", numbers)
        for i, v in enumerate(numbers):
            _number(v, f"band_stats.{key}[{i}]")


def _shards(dataset: Path, split: str, info: Any, folders: dict[Path, Path]) -> None:
    info = _object(info, f"splits.{split}")
    _count(info.get("patches"), f"splits.{split}.patches")
    shards = info.get("shards")
    if not isinstance(shards, list):
        raise _Bad(f"splits.{split}.shards", "a list of shards", shards)
    for i, entry in enumerate(shards):
        where = f"splits.{split}.shards[{i}]"
        entry = _object(entry, where)
        _text(entry.get("file"), f"{where}.file")
        _count(entry.get("patches"), f"{where}.patches", 1)
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise _Bad(f"{where}.sha256", "64 hexadecimal digits", sha)
        inside(dataset, entry["file"], f"field {where}.file", folders)


def check_fields(dataset: Path, manifest: dict[str, Any], version: int) -> None:
    """Raise :class:`JeopardaError` naming ``DATASET/manifest.json`` and the first field off."""
    path = Path(dataset) / "manifest.json"
    try:
        bands = _texts(manifest["bands"], "bands", 1)
        _size(manifest["size"], version)
        _number(manifest["resolution_m"], "resolution_m")
        _text(manifest["resample"], "resample")
        _texts(manifest["classes"], "classes", 1)
        if version >= 2:
            _text(manifest["dataset"], "dataset")
            _texts(manifest["tasks"], "tasks", 1)
            missing = _object(manifest["missing"], "missing")
            _count(missing.get("count"), "missing.count")
            _texts(missing.get("first"), "missing.first")
        if "labels43" in manifest:
            _texts(manifest["labels43"], "labels43", 1)
        s1 = _texts(manifest.get("s1_bands", []), "s1_bands")
        _band_stats(manifest["band_stats"], len(bands) + len(s1))
        for key in ("rejected", "excluded"):
            if not isinstance(manifest[key], list):
                raise _Bad(key, "a list", manifest[key])
        for i, r in enumerate(manifest["rejected"]):
            _text(_object(r, f"rejected[{i}]").get("reason"), f"rejected[{i}].reason")
        for key in ("fingerprint", "compression"):
            if key in manifest:
                _text(manifest[key], key)
        if manifest.get("sr_model") is not None:
            sr = _object(manifest["sr_model"], "sr_model")
            _text(sr.get("path"), "sr_model.path")
            _text(sr.get("sha256"), "sr_model.sha256")
        splits = manifest["splits"]
        if not isinstance(splits, dict) or not splits:
            raise _Bad("splits", "an object of splits (train, val, test)", splits)
        folders: dict[Path, Path] = {}  # each shard folder resolved once
        for split, info in splits.items():
            _shards(Path(dataset), split, info, folders)
    except _Bad as exc:
        raise JeopardaError(f"{path}: {exc}") from None
    except JeopardaError as exc:  # a shard path leaving the data set
        raise JeopardaError(f"{path}: {exc}") from None
