"""Streaming extraction of a verified archive into a temporary folder, then into place.

The archive is read where it lies (the parts of a split file joined as one stream, no second
copy): .tar.zst through ``zstandard`` (all frames), .tar.gz, .zip. Members go into a temporary
folder beside their final place; only when the whole archive is out is each top-level entry
renamed into place, so a failure (a full disk, a damaged stream, an unsafe member) leaves nothing
half-unpacked under a final name. Tar members pass Python's ``data`` filter (no absolute paths,
no ``..``, no links leaving the folder, no devices); zip members with such names are refused.
"""
from __future__ import annotations

import errno
import io
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import refuse_link

KINDS = ("tar.zst", "tar.gz", "zip")


class JoinedReader(io.RawIOBase):
    """Several files read as one, seekable (a zip's directory sits at the end); counts bytes read."""

    def __init__(self, paths: Sequence[Path], progress: Callable[[int], object] | None = None) -> None:
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 (closed in close())
        self._sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._pos = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: sum(self._sizes)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        start = self._pos
        for handle, size in zip(self._files, self._sizes, strict=True):
            if start < size:
                handle.seek(start)
                n = handle.readinto(buffer)
                self._pos += n
                if self._progress and n:
                    self._progress(n)
                return n
            start -= size
        return 0

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


def _zip_member_safe(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not (path.parts and ":" in path.parts[0])


def _extract_tar(stream: IO[bytes], mode: Literal["r|", "r|gz"], into: Path) -> int:
    if not hasattr(tarfile, "data_filter"):  # Python 3.10.12 / 3.11.4 and later have the filters
        raise JeopardaError("unpacking tar archives safely needs Python 3.11.4 or later (tarfile's data filter)")
    count = 0
    with tarfile.open(fileobj=stream, mode=mode) as archive:
        while (member := archive.next()) is not None:
            # folders keep the default mode: a read-only one in the archive would refuse its own members
            archive.extract(member, into, filter="data", set_attrs=not member.isdir())
            archive.members.clear()  # type: ignore[attr-defined]  # a stream's members are not read again
            count += 1
    return count


def _extract_zip(reader: IO[bytes], into: Path) -> int:
    with zipfile.ZipFile(reader) as archive:
        members = archive.infolist()
        bad = next((m.filename for m in members if not _zip_member_safe(m.filename)), None)
        if bad:
            raise tarfile.FilterError(f"member {bad!r} would be written outside the folder")
        for member in members:
            archive.extract(member, into)
    return len(members)


def extract(kind: str, paths: Sequence[Path], into: Path, progress: Callable[[int], object] | None = None) -> int:
    """Unpack the archive ``paths`` (one file or its parts, in order) into ``into``; the member count."""
    with JoinedReader(paths, progress) as raw:
        if kind == "zip":
            return _extract_zip(io.BufferedReader(raw, 1 << 20), into)
        buffered = io.BufferedReader(raw, 4 << 20)
        if kind == "tar.gz":
            return _extract_tar(buffered, "r|gz", into)
        if kind == "tar.zst":
            import zstandard  # only v2.0's archives need it

            with zstandard.ZstdDecompressor().stream_reader(buffered, read_size=4 << 20,
                                                            read_across_frames=True) as plain:
                return _extract_tar(plain, "r|", into)
    raise JeopardaError(f"unknown archive kind {kind!r} (known: {', '.join(KINDS)})")


def unpack(kind: str, paths: Sequence[Path], out: Path, scratch: Path, label: str,
           progress: Callable[[int], object] | None = None,
           before_move: Callable[[list[str]], object] = lambda entries: None) -> list[str]:
    """Extract into ``scratch`` (made here, removed whatever happens), then rename each top-level
    entry into ``out`` (``before_move`` hears their names first); the entries' names. Every failure
    is one line naming ``label``."""
    refuse_link(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    try:
        try:
            count = extract(kind, paths, scratch, progress)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise JeopardaError(f"{out}: the disk filled while unpacking {label}; nothing of it was kept "
                                    "(make room and rerun: the verified archive is fetched only if missing)") from None
            raise
        except tarfile.FilterError as exc:
            raise JeopardaError(f"{label}: refused, {exc}; nothing of it was unpacked") from None
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, _zstd_error()) as exc:
            raise JeopardaError(f"{label}: damaged archive ({exc}); nothing of it was unpacked") from None
        entries = sorted(os.listdir(scratch))
        if not count or not entries:
            raise JeopardaError(f"{label}: the archive holds nothing")
        clash = next((e for e in entries if os.path.lexists(out / e)), None)
        if clash:
            raise JeopardaError(f"{out / clash}: already exists, and {label} unpacks to it; move it away and rerun")
        before_move(entries)
        for entry in entries:
            os.rename(scratch / entry, out / entry)
        return entries
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _zstd_error() -> type[Exception]:
    try:
        import zstandard
    except ImportError:
        return JeopardaError
    return zstandard.ZstdError
