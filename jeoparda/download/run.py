"""``jeoparda download``: plan what is missing, check the space, fetch in parallel, verify, unpack.

Per file: fetch (resumed) → MD5 against the published (or ``--checksums``) value → unpack from
where it lies → record it done → remove the archive (unless kept). A file that fails leaves the
others going; the run ends non-zero naming each failure, and a rerun fetches only what is missing
or was refused.
"""
from __future__ import annotations

import functools
import os
import shlex
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from jeoparda.download.catalog import DataSet, dataset
from jeoparda.download.checksums import Item, Piece, md5_of, plan_items, read_overrides
from jeoparda.download.meter import ByteMeter, Stopped, human_bytes
from jeoparda.download.state import FolderState, check_folder, locked
from jeoparda.download.transfer import Policy, fetch, remote_size
from jeoparda.download.unpack import unpack
from jeoparda.errors import JeopardaError
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


@dataclass
class Job:
    """One file still to do: its pieces' lengths (None: unknown) and what its transfer still needs."""

    item: Item
    sizes: list[int | None]
    to_fetch: int = 0


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
    pending = [i for i in items if state.entries(i.file.name, i.whole_md5) is None]
    if req.dry_run:
        _print_plan(data, items, pending, req, out)
        return 0
    make_dirs(req.out)
    with locked(state):
        pending = [i for i in pending if not _kept_file_ok(i, state)]
        jobs, failures = [], []
        for item in pending:  # a file the server lacks fails alone; the others go on
            try:
                jobs.append(_job(item, state.out, state.work, req.policy))
            except JeopardaError as exc:
                failures.append(str(exc))
        _check_space(req.out, jobs)
        total = sum(j.to_fetch for j in jobs)
        print(f"{data.name}: {len(jobs)} of {len(items)} files to do, {human_bytes(total)} to fetch"
              + (f" from {req.mirror}" if req.mirror else ""), file=err, flush=True)
        stop = threading.Event()
        meter = ByteMeter(total, "download", stream=err, stop=stop)
        with ThreadPoolExecutor(max(1, min(req.workers, len(jobs) or 1))) as pool:
            futures = [pool.submit(_settle, functools.partial(_do, j, req, state, meter, err, stop)) for j in jobs]
            try:
                results = [f.result() for f in futures]
            except KeyboardInterrupt:  # the workers end at their next chunk; partial files stay for the rerun
                stop.set()
                raise
        meter.close()
    failures += [r for r in results if r is not None]
    for line in failures:
        print(f"jeoparda: error: {line}", file=err, flush=True)
    if len(failures) > 1:
        print(f"{data.name}: {len(failures)} of {len(pending)} files failed; rerun the same command to fetch "
              "only what is missing or was refused", file=err)
    if failures:
        return 1
    print(f"{data.name}: all {len(items)} files in {req.out}, verified", file=out)
    print(convert_command(data, req.out, {f.part for f in data.files if f.name in state.done()}), file=out)
    return 0


def _settle(work: Callable[[], None]) -> str | None:
    """None when ``work`` succeeded, else its one line (a failed file never stops the others)."""
    try:
        work()
    except Stopped:
        return "interrupted"
    except JeopardaError as exc:
        return str(exc)
    except OSError as exc:
        from jeoparda.errors import os_error_line
        return os_error_line(exc, "download")
    return None


def _kept_file_ok(item: Item, state: FolderState) -> bool:
    """A plain file already at its place (copied in by hand, or a record lost) that verifies."""
    if item.file.unpack or item.split:
        return False
    path = state.out / item.file.target
    if not path.is_file() or path.is_symlink() or md5_of([path]) != item.whole_md5:
        return False
    state.mark(item.file.name, item.whole_md5, [item.file.target])
    return True


def _job(item: Item, out: Path, work: Path, policy: Policy) -> Job:
    if item.file.unpack and os.path.lexists(out / item.file.target):
        raise JeopardaError(f"{out / item.file.target}: exists, but no jeoparda download recorded it; move it away "
                            f"to fetch {item.file.name} again, or leave out --parts {item.file.part}")
    sizes: list[int | None] = []
    to_fetch = 0
    for piece in item.pieces:
        if (work / piece.name).is_file():
            sizes.append((work / piece.name).stat().st_size)
            continue
        size = remote_size(piece.url, policy)  # also: a mirror without the file is one line now
        if size is not None and piece.size is not None and size != piece.size:
            raise JeopardaError(f"{piece.url}: the server has {size:,} bytes; the published size is "
                                f"{piece.size:,} (a different file? give its checksum with --checksums)")
        size = size if size is not None else piece.size
        partial = work / (piece.name + ".partial")
        have = partial.stat().st_size if partial.is_file() else 0
        sizes.append(size)
        to_fetch += max((size or 0) - have, 0)
    return Job(item, sizes, to_fetch)


def _space(jobs: list[Job]) -> tuple[int, int]:
    """Bytes still to fetch, and about what unpacking writes (the archives are removed only after
    their unpacking, so both count); a file without a published estimate unpacks to 1.5x itself."""
    fetch = sum(j.to_fetch for j in jobs)
    written = sum((j.item.file.unpacked_bytes or int(1.5 * sum(s or 0 for s in j.sizes)))
                  for j in jobs if j.item.file.unpack)
    return fetch, written


def _check_space(out: Path, jobs: list[Job]) -> None:
    """Refuse to start where the transfers and what unpacking writes do not fit."""
    fetch, written = _space(jobs)
    free = shutil.disk_usage(out).free
    if fetch + written > free:
        raise JeopardaError(f"{out}: needs about {human_bytes(fetch + written)} ({human_bytes(fetch)} to fetch, "
                            f"about {human_bytes(written)} unpacked) but {human_bytes(free)} is free; make room "
                            "or fetch fewer --parts")


def _do(job: Job, req: DownloadRequest, state: FolderState, meter: ByteMeter, err: TextIO,
        stop: threading.Event) -> None:
    item = job.item
    paths = [_fetched(p, state.work, req.policy, meter, err, stop) for p in item.pieces]
    if item.split and _verify(paths, item.whole_md5, f"{item.file.name} (its parts joined)", err, stop) is not None:
        raise JeopardaError(f"{item.file.name}: its parts are each intact but joined do not match MD5 "
                            f"{item.whole_md5} ({item.file.source}); nothing of it was unpacked")
    if item.file.unpack:
        size = sum(p.stat().st_size for p in paths)
        unpacking = ByteMeter(size, f"unpack {item.file.name}", stream=err, stop=stop)
        entries = unpack(item.file.unpack, paths, state.out, state.work / f"unpack-{item.file.name}",
                         item.file.name, unpacking.add)
        unpacking.close()
        if not req.keep_archives:
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


def _fetched(piece: Piece, work: Path, policy: Policy, meter: ByteMeter, err: TextIO, stop: threading.Event) -> Path:
    """The verified piece in the work folder: fetched (or continued) and checked; a damaged one is deleted."""
    done = work / piece.name
    refuse_link(done)
    if not done.is_file():
        partial = work / (piece.name + ".partial")
        fetch(piece.url, partial, piece.size, policy, meter.add,
              warn=lambda text: print(f"jeoparda: warning: {text}", file=err, flush=True))
        os.replace(partial, done)
        partial.with_name(partial.name + ".json").unlink(missing_ok=True)
    got = _verify([done], piece.md5, piece.name, err, stop)
    if got is not None:
        done.unlink()
        raise JeopardaError(f"{piece.url}: damaged, MD5 {got} where {piece.md5} is published; deleted, "
                            "nothing of it unpacked (rerun to fetch it again)")
    return done


def _verify(paths: list[Path], md5: str, label: str, err: TextIO, stop: threading.Event) -> str | None:
    """None where ``paths`` joined have MD5 ``md5``, else the MD5 they have."""
    meter = ByteMeter(sum(p.stat().st_size for p in paths), f"verify {label}", stream=err, stop=stop)
    got = md5_of(paths, meter.add)
    meter.close()
    return None if got == md5 else got


def convert_command(data: DataSet, out: Path, parts: set[str]) -> str:
    """The `jeoparda convert` command that reads what was fetched."""
    shards = out.parent / f"{out.name}-shards"
    line = f"jeoparda convert --source {shlex.quote(str(out))} --out {shlex.quote(str(shards))} " \
           f"--format {data.convert_format}"
    if data.name == "bigearthnet-v2" and "s1" in parts:
        line += " --with-s1"
    note = f"\n# {data.note}" if data.note and "s1" in parts else ""
    return f"next: {line}{note}"


def _print_plan(data: DataSet, items: list[Item], pending: list[Item], req: DownloadRequest, out: TextIO) -> None:
    print(f"{data.name}: {data.title}; {len(pending)} of {len(items)} files to do in {req.out} (dry run: "
          "nothing fetched)", file=out)
    for item in items:
        status = "to do" if item in pending else "done"
        for piece in item.pieces:
            size = human_bytes(piece.size) if piece.size is not None else "size from the server"
            print(f"  {status:5}  {piece.name}  {size}  MD5 {piece.md5}  {piece.url}", file=out)
    fetch, written = _space([Job(i, [p.size for p in i.pieces], sum(p.size or 0 for p in i.pieces)) for i in pending])
    where = next(p for p in (req.out, *req.out.absolute().parents) if p.exists())
    free = human_bytes(shutil.disk_usage(where).free)
    print(f"needs about {human_bytes(fetch + written)} ({human_bytes(fetch)} to fetch, about {human_bytes(written)} "
          f"unpacked; sizes the server gives not counted); {free} free in {where}", file=out)
    print(convert_command(data, req.out, {i.file.part for i in items}), file=out)
