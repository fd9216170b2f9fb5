"""``manifest.json`` of a converted data set: atomic writing and checked reading."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jeoparda.shards.format import FORMAT, VERSION
from jeoparda.errors import JeopardaError

MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = ("format", "version", "bands", "size", "resolution_m", "resample", "classes",
                 "labels43", "band_stats", "splits", "rejected", "excluded")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(dataset: Path) -> dict[str, Any]:
    """Read and check ``DATASET/manifest.json``; a clear :class:`JeopardaError` on anything off."""
    path = Path(dataset) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JeopardaError(f"{path}: no manifest; is {dataset} a converted data set "
                            "(jeoparda convert)?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JeopardaError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise JeopardaError(f"{path}: manifest is not a JSON object")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise JeopardaError(f"{path}: format {manifest.get('format')!r} version "
                            f"{manifest.get('version')!r} is not {FORMAT} version {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise JeopardaError(f"{path}: manifest lacks {', '.join(missing)}")
    return manifest
