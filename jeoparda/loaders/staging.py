"""Staging: copy the shards a node reads to node-local storage before the first epoch.

One process per node (local rank 0) copies; the node's other ranks wait for its marker file.
Each file is copied under a temporary name, renamed, and its SHA-256 checked against the
manifest; files already staged with the right checksum (an earlier job) are kept. The staged
folder is ``STAGE_DIR/jeoparda-<fingerprint>`` with a copy of the manifest.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError
from jeoparda.shards.format import ShardError, file_sha256
from jeoparda.shards.manifest import MANIFEST_NAME, write_json_atomic

WAIT_LIMIT_S = 3600.0


def stage_dir_for(manifest: dict[str, Any], stage_dir: str) -> Path:
    base = Path(stage_dir) if stage_dir else Path(tempfile.gettempdir())
    return base / f"jeoparda-{manifest.get('fingerprint', 'unknown')[:16]}"


def _copy_verified(src: Path, dest: Path, sha256: str) -> None:
    if dest.is_file() and file_sha256(dest) == sha256:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    actual = file_sha256(tmp)
    if actual != sha256:
        tmp.unlink(missing_ok=True)
        raise ShardError(f"{src}: checksum mismatch after staging to {dest} "
                         f"(manifest {sha256[:12]}…, copy {actual[:12]}…)")
    os.replace(tmp, dest)


def stage_shards(root: Path, manifest: dict[str, Any], shards: list[dict[str, Any]], stage_dir: str,
                 env: ClusterEnv, wait_limit_s: float = WAIT_LIMIT_S) -> Path:
    """Stage ``shards`` (this node's) and return the staged data set folder."""
    dest = stage_dir_for(manifest, stage_dir)
    key = hashlib.sha256("\n".join(s["file"] for s in shards).encode()).hexdigest()[:16]
    marker = dest / f".staged-{key}"
    if env.local_rank == 0:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for s in shards:
                _copy_verified(Path(root) / s["file"], dest / s["file"], s["sha256"])
            write_json_atomic(dest / MANIFEST_NAME, manifest)
        except OSError as exc:
            raise JeopardaError(f"{dest}: staging failed ({exc.strerror or exc})") from None
        marker.touch()
        return dest
    deadline = time.monotonic() + wait_limit_s
    while not marker.exists():
        if time.monotonic() > deadline:
            raise JeopardaError(f"{marker}: local rank 0 did not finish staging within "
                                f"{wait_limit_s:.0f} s")
        time.sleep(0.2)
    return dest
