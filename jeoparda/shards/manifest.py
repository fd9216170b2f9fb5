"""``manifest.json`` of a converted data set: atomic writing and checked reading (v1 and v2).

:func:`read_manifest` returns every readable version in the version-2 shape, so readers have one
thing to look at: a v1 manifest gains ``dataset``, ``tasks``, ``size`` as [H, W] and an empty
``missing``, and keeps its version number (shards are read by version).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import open_regular, write_bytes_atomic
from jeoparda.shards.format import FORMAT, READABLE_VERSIONS
from jeoparda.shards.manifest_check import check_fields

MANIFEST_NAME = "manifest.json"
MANIFEST_LIMIT = 1 << 30  # bytes; the largest archives' manifests (rejection and exclusion lists) hold tens of MB
REQUIRED_KEYS = {
    1: ("format", "version", "bands", "size", "resolution_m", "resample", "classes", "labels43",
        "band_stats", "splits", "rejected", "excluded"),
    2: ("format", "version", "dataset", "tasks", "bands", "size", "resolution_m", "resample", "classes",
        "band_stats", "splits", "rejected", "missing", "excluded"),
}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and a rename, so readers never see half a file; the
    temporary file is removed when the write fails (a full disk), and the error names ``path``."""
    write_bytes_atomic(Path(path), (json.dumps(data, indent=1, sort_keys=False) + "\n").encode("utf-8"))


def _as_v2(manifest: dict[str, Any]) -> dict[str, Any]:
    size = manifest["size"]
    return {**manifest, "dataset": manifest.get("dataset", "bigearthnet-v1"), "tasks": ["multilabel"],
            "size": [size, size] if isinstance(size, int) else list(size),
            "missing": {"count": 0, "first": []}}


def read_manifest(dataset: Path) -> dict[str, Any]:
    """Read and check ``DATASET/manifest.json``; a clear :class:`JeopardaError` on anything off: a
    field of the wrong type or range, a shard path leading outside the data set."""
    path = Path(dataset) / MANIFEST_NAME
    if not path.exists() and not path.is_symlink():
        raise JeopardaError(f"{path}: no manifest; is {dataset} a converted data set "
                            "(jeoparda convert)?")
    try:
        with open_regular(path, MANIFEST_LIMIT) as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JeopardaError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise JeopardaError(f"{path}: manifest is not a JSON object")
    version = manifest.get("version")
    if manifest.get("format") != FORMAT or isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise JeopardaError(f"{path}: format {manifest.get('format')!r} version {version!r} is not "
                            f"{FORMAT} version {' or '.join(map(str, READABLE_VERSIONS))}")
    missing = [k for k in REQUIRED_KEYS[version] if k not in manifest]
    if missing:
        raise JeopardaError(f"{path}: manifest lacks {', '.join(missing)}")
    check_fields(Path(dataset), manifest, version)
    return _as_v2(manifest) if version == 1 else manifest
