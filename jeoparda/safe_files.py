"""File operations for folders jeoparda owns and files it is handed (docs/reliability.md).

* Inside a folder jeoparda writes (a run folder, a converted data set, a staging folder), no link is
  ever followed: files are opened with ``O_NOFOLLOW``, sub-folders are made one component at a time
  and a component that is a link is refused. The folder the user names may itself be a link (their
  choice); what lies inside it may not.
* Temporary files are named :func:`temp_name` (``.NAME.tmp-PID``), created exclusively, renamed into
  place, and removed on failure; :func:`sweep_temps` removes those a dead process left behind.
* A path read from a file (a manifest's shard) must stay inside its folder: :func:`inside`.
* Input files are read only when they are regular files within a size bound (:func:`open_regular`):
  a link to ``/dev/zero`` or a FIFO is refused, never read.
* Private folders (staging under a shared /tmp) are the user's own, mode 0700, checked: :func:`private_dir`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from jeoparda.errors import JeopardaError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMP = re.compile(r"^\.?(?P<name>.+)\.tmp-(?P<pid>\d+)$")


class UnsafePathError(JeopardaError):
    """A link where jeoparda writes, a path leaving its folder, or an input that is not a regular file."""


def _link_error(path: Path) -> UnsafePathError:
    return UnsafePathError(f"{path}: is a symbolic link; jeoparda does not follow links inside the "
                           "folders it writes (remove the link)")


def refuse_link(path: Path) -> None:
    """Raise where ``path`` is a symbolic link (a missing path is fine)."""
    if Path(path).is_symlink():
        raise _link_error(Path(path))


def make_dirs(root: Path, relative: str | Path = "", mode: int = 0o777) -> Path:
    """``root/relative``, created where missing. ``root`` (the user's choice) may be a link; every
    component below it must be a real folder, never a link."""
    root = Path(root)
    if root.is_symlink() and not root.exists():
        raise JeopardaError(f"{root}: a link to {os.readlink(root)}, which does not exist")
    root.mkdir(parents=True, exist_ok=True, mode=mode)
    here = root
    for part in Path(relative).parts:
        if part in ("", "."):
            continue
        if part == ".." or os.sep in part:
            raise UnsafePathError(f"{root / relative}: leaves {root}")
        here = here / part
        _real_folder(here, mode)
    return here


def _real_folder(path: Path, mode: int) -> os.stat_result:
    """Make ``path`` (mode ``mode``) where missing; refuse it where it is a link or not a folder."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise _link_error(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"{path}: exists and is not a folder")
    return info


def open_write(path: Path, append: bool = False, exclusive: bool = False, mode: int = 0o644) -> int:
    """A file descriptor for writing ``path`` without following a link: truncated (or appended to,
    or created anew with ``exclusive``). A link at ``path`` is an :class:`UnsafePathError`."""
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC
    flags |= os.O_APPEND if append else (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        return os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and Path(path).is_symlink()):
            raise _link_error(Path(path)) from None
        raise


@contextlib.contextmanager
def writing(path: Path, append: bool = False, text: bool = True) -> Iterator[IO]:
    """``open(path, "w"/"a")`` that refuses a link at ``path``."""
    fd = open_write(path, append=append)
    mode = ("a" if append else "w") + ("" if text else "b")
    with open(fd, mode, encoding="utf-8" if text else None) as handle:
        yield handle


def temp_name(path: Path) -> Path:
    """The temporary name ``path`` is written under before the rename: ``.NAME.tmp-PID`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` (created exclusively, never a link); on success
    it is renamed over ``path`` (a link at ``path`` is replaced, not followed), on any failure
    (a full disk included) removed. An ``OSError`` without a file name gets ``path``'s."""
    path = Path(path)
    tmp = temp_name(path)
    with contextlib.suppress(FileNotFoundError):
        if tmp.is_symlink() or tmp.exists():
            os.unlink(tmp)  # an earlier process with our PID (a container restart)
    os.close(open_write(tmp, exclusive=True))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename:
            exc.filename = str(path)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (readers never see half a file)."""
    with replacing(path) as tmp:
        fd = open_write(tmp)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temps(folder: Path, pattern: str = "*.tmp-*") -> list[Path]:
    """Remove the temporary files in ``folder`` that a process no longer running left behind
    (a write that failed half-way, a full disk, a kill); returns what was removed. Links are
    removed as links; folders are left alone."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.glob(pattern):
        match = _TEMP.match(entry.name)
        if match is None or (int(match["pid"]) != os.getpid() and _alive(int(match["pid"]))):
            continue
        if entry.is_symlink() or entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            removed.append(entry)
    return removed


def inside(root: Path, relative: str, what: str = "path", folders: dict[Path, Path] | None = None) -> Path:
    """``root/relative`` where it stays inside ``root`` once links are resolved; else a one-line
    error naming ``what`` (say, "manifest.json: shard file"). ``folders``: a cache of resolved folders
    for many paths under one root (a manifest's shards): each folder is resolved once, and each file
    costs one lstat unless it is itself a link (metadata servers of parallel file systems are slow)."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise UnsafePathError(f"{what} {relative!r}: not a relative path")
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise UnsafePathError(f"{what} {relative!r}: leaves {root} (absolute or '..')")
    full = Path(root) / candidate
    cache: dict[Path, Path] = {} if folders is None else folders
    base = cache.get(Path(root)) or cache.setdefault(Path(root), Path(root).resolve())
    folder = cache.get(full.parent) or cache.setdefault(full.parent, full.parent.resolve())
    resolved = full.resolve() if full.is_symlink() else folder / full.name
    try:
        resolved.relative_to(base)
    except ValueError:
        raise UnsafePathError(f"{what} {relative!r}: leads outside {root} through a link") from None
    return full


def open_regular(path: Path, limit_bytes: int) -> IO[bytes]:
    """Open ``path`` for reading where it is a regular file (a link to one is fine) of at most
    ``limit_bytes``; a device (``/dev/zero``), a FIFO, a socket or a folder is refused without
    blocking or reading."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    except OSError as exc:
        raise JeopardaError(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{path}: not a regular file ({_kind(info.st_mode)}); refused")
        if info.st_size > limit_bytes:
            raise UnsafePathError(f"{path}: {info.st_size} bytes, more than the {limit_bytes} a file of "
                                  "this kind may hold; refused")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: Path, limit_bytes: int) -> None:
    """Raise as :func:`open_regular` would, without keeping the file open."""
    open_regular(path, limit_bytes).close()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"


def private_dir(path: Path) -> Path:
    """``path`` as a folder of this user's own, mode 0700: created so, or, where it exists, checked
    (a real folder, not a link, owned by this user, writable by nobody else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = _real_folder(path, 0o700)
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UnsafePathError(f"{path}: belongs to user id {info.st_uid}, not to you; refused "
                              "(set data.stage_dir to a folder of your own)")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePathError(f"{path}: writable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
                              "refused (chmod 700 it or set data.stage_dir)")
    return path
