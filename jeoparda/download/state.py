"""The download folder's own record: which data set it holds, which files are done, one writer at a time.

``OUT/.jeoparda-download/`` holds ``state.json`` (the data set, and per file its MD5 and the entries
it put into OUT), the partial and verified files, the unpacking scratch folders and a lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jeoparda.download.catalog import DataSet, owner_of
from jeoparda.errors import JeopardaError
from jeoparda.safe_files import make_dirs, open_regular, open_write, refuse_link, write_bytes_atomic

WORK = ".jeoparda-download"
#: state.json lists a few files: a few kB; anything near this is not ours.
STATE_LIMIT = 16 << 20


class FolderState:
    """``state.json`` of one download folder; ``done``/``mark`` are safe from several threads."""

    def __init__(self, out: Path, data: DataSet) -> None:
        self.out = out
        self.work = out / WORK
        self.path = self.work / "state.json"
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"dataset": data.name, "files": {}}
        refuse_link(self.work)
        refuse_link(self.path)
        if os.path.lexists(self.path):
            try:
                with open_regular(self.path, STATE_LIMIT) as handle:  # a link, FIFO or device is refused
                    saved = json.loads(handle.read())
                saved["files"].items()
            except (ValueError, KeyError, AttributeError, TypeError):
                raise JeopardaError(f"{self.path}: not a jeoparda download record; remove {self.work} and rerun "
                                    "(the files in the folder are then checked again)") from None
            if saved.get("dataset") != data.name:
                raise JeopardaError(f"{out}: holds a download of {saved.get('dataset')}, not {data.name}; "
                                    "choose another --out")
            self._state = saved

    def record(self, name: str) -> dict[str, Any]:
        """What is recorded of file ``name``: md5, entries, and pending while its entries are moved in."""
        record = self._state["files"].get(name)
        return record if isinstance(record, dict) else {}

    def entries(self, name: str, md5: str) -> list[str] | None:
        """The entries file ``name`` put into the folder, where it was done with this MD5 and they are all there."""
        record = self.record(name)
        if record.get("md5") != md5 or record.get("pending"):
            return None
        entries = record.get("entries") or []
        return entries if entries and all(os.path.lexists(self.out / e) for e in entries) else None

    def done(self) -> set[str]:
        """The files recorded as done (server names)."""
        return {name for name in self._state["files"] if not self.record(name).get("pending")}

    def owned(self) -> set[str]:
        """Top-level names in the folder that an earlier run of this download put there."""
        return {e.split("/", 1)[0] for r in self._state["files"].values() for e in r.get("entries", [])}

    def mark(self, name: str, md5: str, entries: list[str], pending: bool = False) -> None:
        """Record file ``name`` as done (or, ``pending``, as having these entries on their way in)."""
        with self._lock:
            self._state["files"][name] = {"md5": md5, "entries": entries, **({"pending": True} if pending else {})}
            write_bytes_atomic(self.path, json.dumps(self._state, indent=1, sort_keys=True).encode())


def check_folder(out: Path, data: DataSet, state: FolderState) -> None:
    """Refuse a folder holding anything that is not this data set's: another data set, or files
    of the user's own (downloads never mix with them)."""
    targets = {f.target.split("/", 1)[0] for f in data.files} | state.owned() | {WORK}
    for entry in sorted(os.listdir(out)):
        if entry in targets:
            continue
        other = owner_of(entry)
        what = f"{entry} of {other}" if other else entry
        raise JeopardaError(f"{out}: holds {what}, which is not part of {data.name}; choose an empty folder "
                            f"or the folder of an earlier `jeoparda download {data.name}`")


@contextlib.contextmanager
def locked(state: FolderState) -> Iterator[None]:
    """One ``jeoparda download`` per folder at a time; scratch left by a killed run is removed."""
    make_dirs(state.out, WORK)
    fd = open_write(state.work / "lock", append=True)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JeopardaError(f"{state.out}: another jeoparda download is writing this folder; "
                                "wait for it or choose another --out") from None
        for scratch in state.work.glob("unpack-*"):
            if scratch.is_symlink():
                scratch.unlink()
            else:
                shutil.rmtree(scratch, ignore_errors=True)
        yield
    finally:
        os.close(fd)
