"""Staging: copy the shards a node reads to node-local storage before the first epoch.

One process per node (local rank 0) copies; the node's other ranks wait for its marker file.
Each file is copied under a temporary name, renamed, and its SHA-256 checked against the
manifest; files already staged with the right checksum (an earlier job) are kept. The staged
folder is ``STAGE_DIR/jeoparda-<uid>-<fingerprint>`` with a copy of the manifest: the user's own,
mode 0700, checked by every rank before it is used (a link, another user's folder or one others may
write is refused with one line; docs/reliability.md), and no staged file leaves it.

When local rank 0 fails, it writes a failure marker holding the reason beside the done marker
before raising, so that the waiting ranks stop at once with that reason instead of holding their
GPUs until the wait limit.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError
from jeoparda.safe_files import inside, make_dirs, open_write, private_dir, refuse_link, replacing, write_bytes_atomic
from jeoparda.shards.format import ShardError, file_sha256
from jeoparda.shards.manifest import MANIFEST_NAME, write_json_atomic

WAIT_LIMIT_S = 3600.0
POLL_S = 0.2
#: A failure marker older than this before the waiting process started is an earlier run's.
STALE_S = 60.0
_REASON_BYTES = 4096


def stage_dir_for(manifest: dict[str, Any], stage_dir: str) -> Path:
    """The node-local folder a data set is staged into: per user (a shared /tmp holds many users'
    folders), per data set."""
    base = Path(stage_dir) if stage_dir else Path(tempfile.gettempdir())
    user = os.geteuid() if hasattr(os, "geteuid") else 0
    return base / f"jeoparda-{user}-{str(manifest.get('fingerprint', 'unknown'))[:16]}"


def _copy_verified(src: Path, dest: Path, sha256: str) -> None:
    if not dest.is_symlink() and dest.is_file() and file_sha256(dest) == sha256:
        return
    with replacing(dest) as tmp:  # created afresh, never a link; renamed over dest; removed on failure
        shutil.copyfile(src, tmp)
        actual = file_sha256(tmp)
        if actual != sha256:
            raise ShardError(f"{src}: checksum mismatch after staging to {dest} "
                             f"(manifest {sha256[:12]}…, copy {actual[:12]}…)")


def markers(dest: Path, shards: list[dict[str, Any]], job: str | None = None) -> tuple[Path, Path]:
    """The done and failure markers of staging ``shards`` (one node's) into ``dest``; the failure
    marker is the job's own where the launcher names the job, so a resubmitted job never reads an
    earlier job's failure."""
    key = hashlib.sha256("\n".join(s["file"] for s in shards).encode()).hexdigest()[:16]
    done = dest / f".staged-{key}"
    return done, done.with_name(f"{done.name}{f'.job-{job}' if job else ''}.failed")


def stage_shards(root: Path, manifest: dict[str, Any], shards: list[dict[str, Any]], stage_dir: str,
                 env: ClusterEnv, wait_limit_s: float = WAIT_LIMIT_S) -> Path:
    """Stage ``shards`` (this node's) and return the staged data set folder."""
    dest = stage_dir_for(manifest, stage_dir)
    try:  # every rank checks the folder before it reads or writes there; a refusal writes no marker
        private_dir(dest)
    except OSError as exc:
        raise JeopardaError(f"{dest}: staging failed ({_reason(exc)})") from None
    done, failed = markers(dest, shards, env.job_id)
    if env.local_rank == 0:
        _stage(Path(root), manifest, shards, dest, done, failed)
    else:
        _wait(dest, done, failed, env, wait_limit_s)
    return dest


def _stage(root: Path, manifest: dict[str, Any], shards: list[dict[str, Any]], dest: Path,
           done: Path, failed: Path) -> None:
    try:
        for marker in (done, failed, *dest.glob(f"{done.name}.*failed")):  # earlier runs' verdicts
            marker.unlink(missing_ok=True)
        for s in shards:
            what = f"{root / MANIFEST_NAME}: shard file"
            src, target = inside(root, s["file"], what), inside(dest, s["file"], what)
            make_dirs(dest, Path(s["file"]).parent)
            _copy_verified(src, target, s["sha256"])
        refuse_link(dest / MANIFEST_NAME)
        write_json_atomic(dest / MANIFEST_NAME, manifest)
        os.close(open_write(done))
    except BaseException as exc:  # whatever stops local rank 0 must release the node's other ranks
        reason = _reason(exc)
        _write_failure(failed, reason)
        if isinstance(exc, OSError):
            raise JeopardaError(f"{dest}: staging failed ({reason})") from None
        raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc) if isinstance(exc, JeopardaError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def _write_failure(failed: Path, reason: str) -> None:
    """Write the failure marker under a temporary name and rename it, so a waiting rank never reads
    half a reason. Best effort: when even this fails (the folder could not be made), the others
    wait until their limit, or until ``srun --kill-on-bad-exit=1`` ends the step."""
    try:
        write_bytes_atomic(failed, (reason + "\n").encode("utf-8"))  # its temp file removed on failure
    except OSError:
        pass


def _wait(dest: Path, done: Path, failed: Path, env: ClusterEnv, wait_limit_s: float) -> None:
    # Only a marker written after this process started is about this attempt: local rank 0 removes
    # an earlier run's when it starts, but this rank may look before it does.
    since = _process_start() - STALE_S
    deadline = time.monotonic() + wait_limit_s
    while not done.exists():
        reason = _failure(failed, since)
        if reason is not None:
            raise JeopardaError(f"{dest}: local rank 0 of node {env.node} ({env.hostname or 'this host'}) "
                                f"failed to stage the shards: {reason}")
        if time.monotonic() > deadline:
            raise JeopardaError(f"{done}: local rank 0 did not finish staging within "
                                f"{wait_limit_s:.0f} s")
        time.sleep(POLL_S)


def _failure(failed: Path, since: float) -> str | None:
    """The reason in the failure marker, if one was written since ``since`` (Unix time)."""
    try:
        info = os.lstat(failed)
        if not stat.S_ISREG(info.st_mode) or info.st_mtime < since:
            return None
        with open(failed, "rb") as fh:
            text = fh.read(_REASON_BYTES).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{failed}: unreadable failure marker ({exc.strerror or exc})"
    return " ".join(text.split()) or "no reason given"


def _process_start() -> float:
    """Unix time this process started (Linux: from /proc), else now."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()
    return time.time() - age
