"""``jeoparda download``: plan what is missing, check the space, fetch in parallel, verify, unpack.

Per file: fetch (resumed) → MD5 against the published (or ``--checksums``) value → unpack from
where it lies (its entries recorded as pending before they are moved in) → record it done →
remove the archive (unless kept). A file that fails leaves the others going; the run ends
non-zero naming each failure, and a rerun fetches only what is missing or was refused. Ctrl-C or
SIGTERM stops every transfer at its next chunk or back-off; partial files stay for the rerun.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from jeoparda.download.catalog import DataSet, dataset
from jeoparda.download.checksums import Item, Piece, md5s_of, plan_items, read_overrides
from jeoparda.download.meter import ByteMeter, Interrupted, human_bytes
from jeoparda.download.plan import Job, check_space, convert_command, job_for, print_plan, settled_in_place
from jeoparda.download.state import FolderState, check_folder, locked
from jeoparda.download.transfer import Policy, fetch
from jeoparda.download.unpack import unpack
from jeoparda.errors import JeopardaError, os_error_line
from jeoparda.safe_files import make_dirs, refuse_link


@dataclass(frozen=True)
class DownloadRequest:
    """What the user asked for (the command's options)."""

    dataset: str
    out: Path
    parts: tuple[str, ...] | None = None
    mirror: str | None = None
    checksums: Path | None = None
    workers: int = 4
    keep_archives: bool = False
    dry_run: bool = False
    policy: Policy = field(default_factory=Policy)


def items_of(req: DownloadRequest) -> tuple[DataSet, list[Item]]:
    """The data set and its selected files as they will be fetched (mirror, overrides applied)."""
    data = dataset(req.dataset)
    files = data.select(req.parts)
    overrides = read_overrides(req.checksums) if req.checksums else {}
    base = None if req.mirror is None else req.mirror.rstrip("/") + "/"
    return data, plan_items(files, base, overrides, req.checksums, [f.name for f in data.files])


def run_download(req: DownloadRequest, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The whole command; 0 when every selected file is in place, verified."""
    out, err = out or sys.stdout, err or sys.stderr
    data, items = items_of(req)
    if req.out.exists() and not req.out.is_dir():
        raise JeopardaError(f"{req.out}: exists and is not a folder")
    state = FolderState(req.out, data)
    if req.out.is_dir():
        check_folder(req.out, data, state)
    if req.dry_run:
        print_plan(data, items, [i for i in items if state.entries(i.file.name, i.whole_md5) is None], req.out, out)
        return 0
    make_dirs(req.out)
    failures: list[str] = []
    with locked(state), _stopped_by_sigterm():
        jobs: list[Job] = []
        for item in items:  # a file the server lacks, or one in the way, fails alone; the others go on
            line = _settle(functools.partial(_plan_one, item, state, req.policy, jobs))
            failures += [line] if line else []
        check_space(req.out, jobs)
        print(f"{data.name}: {len(jobs)} of {len(items)} files to do, {human_bytes(sum(j.to_fetch for j in jobs))} "
              "to fetch" + (f" from {req.mirror}" if req.mirror else ""), file=err, flush=True)
        failures += _run_jobs(jobs, req, state, err)
    for line in failures:
        print(f"jeoparda: error: {line}", file=err, flush=True)
    if len(failures) > 1:
        print(f"{data.name}: {len(failures)} files failed; rerun the same command to fetch only what is missing "
              "or was refused", file=err)
    if failures:
        return 1
    print(f"{data.name}: all {len(items)} files in {req.out}, verified", file=out)
    print(convert_command(data, req.out, {f.part for f in data.files if f.name in state.done()}), file=out)
    return 0


def _plan_one(item: Item, state: FolderState, policy: Policy, jobs: list[Job]) -> None:
    if not settled_in_place(item, state):
        jobs.append(job_for(item, state, policy))


def _run_jobs(jobs: list[Job], req: DownloadRequest, state: FolderState, err: TextIO) -> list[str]:
    """Each job on a thread of its own (``--workers`` at once); the failures' lines."""
    stop = req.policy.stop
    meter = ByteMeter(sum(j.have + j.to_fetch for j in jobs), "download", stream=err, stop=stop,
                      already=sum(j.have for j in jobs))
    pool = ThreadPoolExecutor(max(1, min(req.workers, len(jobs) or 1)))
    try:
        futures = [pool.submit(_settle, functools.partial(_do, j, req, state, meter, err)) for j in jobs]
        results = [f.result() for f in futures]
    except KeyboardInterrupt:  # the workers end at their next chunk or back-off; partial files stay
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    meter.close()
    return [line for line in results if line is not None]


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (Slurm's time limit, scancel) ends the run as Ctrl-C does: transfers stop, partial files stay."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _settle(work: Callable[[], Any]) -> str | None:
    """None when ``work`` succeeded, else its one line (a failed file never stops the others)."""
    try:
        work()
    except Interrupted:
        return "interrupted"
    except JeopardaError as exc:
        return str(exc)
    except OSError as exc:
        return os_error_line(exc, "download")
    return None


def _do(job: Job, req: DownloadRequest, state: FolderState, meter: ByteMeter, err: TextIO) -> None:
    item, stop = job.item, req.policy.stop
    if stop.is_set():
        raise Interrupted
    paths = [_fetched(piece, size, state.work, req.policy, meter, err) for piece, size in zip(item.pieces, job.sizes)]
    _verify(item, paths, err, stop)
    if item.file.unpack:
        unpacking = ByteMeter(sum(p.stat().st_size for p in paths), f"unpack {item.file.name}", stream=err,
                              stop=stop, bar=False)
        entries = unpack(item.file.unpack, paths, state.out, state.work / f"unpack-{item.file.name}",
                         item.file.name, unpacking.add,
                         before_move=lambda names: state.mark(item.file.name, item.whole_md5, names, pending=True))
        unpacking.close()
        state.mark(item.file.name, item.whole_md5, entries)
        if not req.keep_archives:  # only once recorded: a rerun never needs what was removed
            for path in paths:
                path.unlink()
    else:
        dest = state.out / item.file.target
        make_dirs(state.out, Path(item.file.target).parent)
        refuse_link(dest)
        os.replace(paths[0], dest)
        entries = [item.file.target]
        state.mark(item.file.name, item.whole_md5, entries)
    print(f"{item.file.name}: verified (MD5 {item.whole_md5}), in place as {', '.join(entries)}", file=err, flush=True)


def _fetched(piece: Piece, size: int | None, work: Path, policy: Policy, meter: ByteMeter, err: TextIO) -> Path:
    """``piece`` in the work folder, fetched (or continued) and checked against ``size`` (published,
    or the server's); not yet verified."""
    done = work / piece.name
    refuse_link(done)
    if not done.is_file():
        partial = work / (piece.name + ".partial")
        fetch(piece.url, partial, size, policy, meter.add,
              warn=lambda text: print(f"jeoparda: warning: {text}", file=err, flush=True))
        os.replace(partial, done)
        partial.with_name(partial.name + ".json").unlink(missing_ok=True)
    return done


def _verify(item: Item, paths: list[Path], err: TextIO, stop: threading.Event) -> None:
    """Check each piece against its MD5 and, for a split file, the pieces joined against the file's,
    in one read; a damaged piece is deleted (the rerun fetches it again), nothing is unpacked."""
    label = item.file.name + (" (its parts)" if item.split else "")
    meter = ByteMeter(sum(p.stat().st_size for p in paths), f"verify {label}", stream=err, stop=stop, bar=False)
    each, joined = md5s_of(paths, meter.add)
    meter.close()
    damaged = [(piece, got, path) for piece, got, path in zip(item.pieces, each, paths) if got != piece.md5]
    for _, _, path in damaged:
        path.unlink()
    if damaged:
        piece, got, _ = damaged[0]
        more = f" ({len(damaged) - 1} more part(s) too)" if len(damaged) > 1 else ""
        raise JeopardaError(f"{piece.url}: damaged, MD5 {got} where {piece.md5} is published; deleted, "
                            f"nothing of it unpacked (rerun to fetch it again){more}")
    if joined != item.whole_md5:
        raise JeopardaError(f"{item.file.name}: its parts are each intact but joined do not match MD5 "
                            f"{item.whole_md5} ({item.file.source}); nothing of it was unpacked")
