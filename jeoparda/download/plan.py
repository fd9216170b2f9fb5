"""Before any transfer: what each file still needs, whether what is in the folder may stay, the space.

A file is skipped when recorded done (its entries present); a file whose entries were being moved
in when the last run died is adopted when they all arrived, else its entries are removed and it is
unpacked again from the verified archive, which is removed only after the file is recorded done.
A plain file already at its place is verified and kept, and refused when it differs (never
overwritten). A folder in the way that no download recorded is refused before any transfer.
"""
from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from jeoparda.download.catalog import DataSet
from jeoparda.download.checksums import Item, md5_of
from jeoparda.download.meter import human_bytes
from jeoparda.download.state import FolderState
from jeoparda.download.transfer import Policy, remote_size
from jeoparda.errors import JeopardaError


@dataclass
class Job:
    """One file still to do: its pieces' lengths (None: unknown), what it holds and still needs."""

    item: Item
    sizes: list[int | None]
    have: int = 0
    to_fetch: int = 0


def settled_in_place(item: Item, state: FolderState) -> bool:
    """Whether ``item`` needs nothing: done, adopted from a run that died moving it in, or a plain
    file found at its place that verifies. A plain file that differs is refused."""
    name, md5, out = item.file.name, item.whole_md5, state.out
    if state.entries(name, md5) is not None:
        return True
    record = state.record(name)
    if record.get("pending") and record.get("md5") == md5:
        entries = record.get("entries") or []
        if all(os.path.lexists(out / e) for e in entries):
            state.mark(name, md5, entries)
            return True
        for entry in entries:  # ours, recorded before the move; the verified archive is still there
            path = out / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    if item.file.unpack or item.split:
        return False
    path = out / item.file.target
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_file() or md5_of(path) != md5:
        raise JeopardaError(f"{path}: exists and is not {name} as published (MD5 {md5}); move it away to fetch it")
    state.mark(name, md5, [item.file.target])
    return True


def job_for(item: Item, state: FolderState, policy: Policy) -> Job:
    """What ``item`` still needs; a folder in its way, or a server without it, is one line now."""
    out, work = state.out, state.work
    target = out / item.file.target
    if item.file.unpack and os.path.lexists(target):
        recorded = state.record(item.file.name).get("md5")
        why = (f"was unpacked from a file with MD5 {recorded}, not {item.whole_md5}" if recorded
               else "no jeoparda download recorded it")
        raise JeopardaError(f"{target}: exists, but {why}; move it away to fetch {item.file.name} again, or "
                            f"leave out --parts {item.file.part}")
    job = Job(item, [])
    for piece in item.pieces:
        if (work / piece.name).is_file():
            job.sizes.append((work / piece.name).stat().st_size)
            continue
        size = remote_size(piece.url, policy)  # also: a mirror without the file is one line now
        if size is not None and piece.size is not None and size != piece.size:
            raise JeopardaError(f"{piece.url}: the server has {size:,} bytes; the published size is "
                                f"{piece.size:,} (a different file? give its checksum with --checksums)")
        size = size if size is not None else piece.size
        partial = work / (piece.name + ".partial")
        have = partial.stat().st_size if partial.is_file() and not partial.is_symlink() else 0
        job.sizes.append(size)
        job.have += min(have, size or have)
        job.to_fetch += max((size or 0) - have, 0)
    return job


def space(jobs: list[Job]) -> tuple[int, int]:
    """Bytes still to fetch, and about what unpacking writes (the archives are removed only after
    their unpacking, so both count); a file without a published estimate unpacks to 1.5x itself."""
    fetch = sum(j.to_fetch for j in jobs)
    written = sum((j.item.file.unpacked_bytes or int(1.5 * sum(s or 0 for s in j.sizes)))
                  for j in jobs if j.item.file.unpack)
    return fetch, written


def check_space(out: Path, jobs: list[Job]) -> None:
    """Refuse to start where the transfers and what unpacking writes do not fit."""
    fetch, written = space(jobs)
    free = shutil.disk_usage(out).free
    if fetch + written > free:
        raise JeopardaError(f"{out}: needs about {human_bytes(fetch + written)} ({human_bytes(fetch)} to fetch, "
                            f"about {human_bytes(written)} unpacked) but {human_bytes(free)} is free; make room "
                            "or fetch fewer --parts")


def convert_command(data: DataSet, out: Path, parts: set[str]) -> str:
    """The `jeoparda convert` command that reads what was fetched."""
    out = out.absolute()
    line = (f"jeoparda convert --source {shlex.quote(str(out))} "
            f"--out {shlex.quote(str(out.parent / (out.name + '-shards')))} --format {data.convert_format}")
    if data.name == "bigearthnet-v2" and "s1" in parts:
        line += " --with-s1"
    note = f"\n# {data.note}" if data.note and "s1" in parts else ""
    return f"next: {line}{note}"


def print_plan(data: DataSet, items: list[Item], pending: list[Item], out_dir: Path, stream: TextIO) -> None:
    """--dry-run: each file with its state, size, MD5 and URL; the space; the convert command."""
    print(f"{data.name}: {data.title}; {len(pending)} of {len(items)} files to do in {out_dir} (dry run: "
          "nothing fetched)", file=stream)
    for item in items:
        status = "to do" if item in pending else "done"
        for piece in item.pieces:
            size = human_bytes(piece.size) if piece.size is not None else "size from the server"
            print(f"  {status:5}  {piece.name}  {size}  MD5 {piece.md5}  {piece.url}", file=stream)
    fetch, written = space([Job(i, [p.size for p in i.pieces], 0, sum(p.size or 0 for p in i.pieces))
                            for i in pending])
    where = next(p for p in (out_dir, *out_dir.absolute().parents) if p.exists())
    free = human_bytes(shutil.disk_usage(where).free)
    print(f"needs about {human_bytes(fetch + written)} ({human_bytes(fetch)} to fetch, about {human_bytes(written)} "
          f"unpacked; sizes the server gives not counted); {free} free in {where}", file=stream)
    print(convert_command(data, out_dir, {i.file.part for i in items}), file=stream)
