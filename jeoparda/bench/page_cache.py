"""The page cache of the files a rank reads: how much of them it holds, and dropping them from it.

``resident`` asks the kernel which pages of a file are in memory: ``mincore`` over a read-only
mapping where the kernel answers it truly (for files the caller owns or may write; since Linux 5.0
it reports every page of other files as cached), else reads of sampled pages with ``RWF_NOWAIT``,
which fail rather than wait for storage: what a cold pass must start without, and what a warm
pass finds. ``drop`` writes back
and then evicts each file's pages with ``posix_fadvise(POSIX_FADV_DONTNEED)`` (no root needed, only
permission to read the file) and checks that they went: a file system may keep them (tmpfs holds
files only in memory; some network file systems ignore the hint), and then a cold pass would be a
warm one under another name.
"""
from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jeoparda.errors import JeopardaError

#: Above this fraction of a file's pages still cached after the drop, the file system kept them.
KEPT_FRACTION = 0.05

_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class Residency:
    """Bytes of a set of files, and how many of them the page cache holds (None: cannot be told)."""

    files: int
    bytes: int
    cached: int | None

    @property
    def fraction(self) -> float | None:
        if self.cached is None:
            return None
        return self.cached / self.bytes if self.bytes else 0.0


@dataclass(frozen=True)
class Drop:
    """What dropping did: the cache before and after, whether the file system let the pages go,
    and why not where it refused the hint outright (``refused``)."""

    before: Residency
    after: Residency
    refused: str = ""

    @property
    def took_effect(self) -> bool | None:
        """True: the pages went; False: the file system kept them; None: the cache cannot be read."""
        if self.refused:
            return False
        fraction = self.after.fraction
        return None if fraction is None else fraction <= KEPT_FRACTION


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long)
        libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def _cached_pages(fd: int, size: int) -> int | None:
    """Pages of the open file ``fd`` that are in the page cache; None where mincore cannot tell."""
    if size == 0:
        return 0
    if _LIBC is None:
        return None
    addr = _LIBC.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        return None
    try:
        vec = np.zeros(-(-size // _PAGE), np.uint8)
        if _LIBC.mincore(addr, size, vec.ctypes.data) != 0:
            return None
        return int(np.count_nonzero(vec & 1))
    finally:
        _LIBC.munmap(addr, size)


#: Pages probed per file where mincore cannot be trusted.
SAMPLES = 256


def _sampled_pages(fd: int, size: int) -> int | None:
    """Pages of ``fd`` in the page cache, estimated from ``SAMPLES`` evenly spread one-byte reads
    that may not wait for storage (``RWF_NOWAIT``: EAGAIN where the page is not cached); None
    where the file system does not support it. A refused read still starts reading its page, and
    with the usual readahead the kernel takes evenly spread probes for a sequential read and soon
    brings in whole stretches of the file (a cold 4 MB file read as 94 % cached here): so the probes
    read with readahead off (``POSIX_FADV_RANDOM`` on this descriptor), and each miss brings in its
    own page only (a large folio at most, a few pages: well apart from the next probe in a shard)."""
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None:
        return None
    pages = -(-size // _PAGE)
    probes = np.unique(np.linspace(0, pages - 1, min(SAMPLES, pages)).astype(np.int64))
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    buffer = bytearray(1)
    hits = 0
    for page in probes:
        try:
            hits += os.preadv(fd, [buffer], int(page) * _PAGE, flag) > 0
        except BlockingIOError:
            pass
        except OSError:  # EOPNOTSUPP and the like: this file system cannot say
            return None
    return round(hits / len(probes) * pages)


def _mincore_truthful(st: os.stat_result, fd: int) -> bool:
    """Whether mincore reports ``fd``'s real pages: the caller owns the file, may write it, or is root."""
    euid = os.geteuid()
    return euid == 0 or st.st_uid == euid or os.access(f"/proc/self/fd/{fd}", os.W_OK)


def _open(path: Path, why: str) -> int:
    try:  # shard paths were checked to stay inside the data set (safe_files.inside): links there are fine
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise JeopardaError(f"{path}: cannot open ({exc.strerror or exc}); {why}") from None


def resident(paths: Iterable[Path], why: str = "bench io reads every shard it times") -> Residency:
    """How much of ``paths`` the page cache holds now."""
    files = total = 0
    cached: int | None = 0
    for path in paths:
        fd = _open(path, why)
        try:
            st = os.fstat(fd)
            size = st.st_size
            pages = _cached_pages(fd, size) if _mincore_truthful(st, fd) else _sampled_pages(fd, size)
        finally:
            os.close(fd)
        files += 1
        total += size
        cached = None if pages is None or cached is None else cached + min(pages * _PAGE, size)
    return Residency(files, total, cached)


def drop(paths: Iterable[Path]) -> Drop:
    """Write back and evict every page of ``paths`` from the page cache; returns the cache before
    and after. A file that cannot be opened is one line naming it."""
    paths = list(paths)
    why = "--cold opens every file the rank will read to drop its pages"
    before = resident(paths, why)
    refused = ""
    for path in paths:
        fd = _open(path, why)
        try:
            try:
                os.fdatasync(fd)  # dirty pages (a data set just written) are not dropped until written
            except OSError:
                pass  # a file system without it: its pages are clean or stay, and the check says which
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError as exc:
                refused = refused or f"{path}: posix_fadvise: {exc.strerror or exc}"
        finally:
            os.close(fd)
    return Drop(before, resident(paths, why), refused)
