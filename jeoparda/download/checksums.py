"""Checksums: MD5 of files on disk, and ``--checksums FILE`` (md5sum's format) overriding the published ones.

An override names files by their server name. A line for ``NAME.SUFFIX`` or ``NAMEaa`` (``split``'s
naming) where ``NAME`` is a file of the data set makes ``NAME`` a split file: its parts are fetched
(each checked by its own line), and unpacked as one stream in the order of their names. Nothing is
ever fetched without a checksum.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from jeoparda.download.catalog import RemoteFile
from jeoparda.errors import JeopardaError
from jeoparda.safe_files import open_regular

CHUNK = 4 << 20
_LINE = re.compile(r"^(?P<md5>[0-9a-fA-F]{32}) [ *](?P<name>[^/\\]+)$")
#: An override file is a list of names and checksums: a few MiB at most.
OVERRIDE_LIMIT = 8 << 20


@dataclass(frozen=True)
class Piece:
    """One file on the server: a whole published file or one part of a split one."""

    name: str
    md5: str
    size: int | None
    url: str


@dataclass(frozen=True)
class Item:
    """A published file as it is fetched: its pieces (one unless split), checked one by one."""

    file: RemoteFile
    pieces: tuple[Piece, ...]
    whole_md5: str            # the MD5 of the pieces joined (the file's published or overriding MD5)

    @property
    def split(self) -> bool:
        return len(self.pieces) > 1 or self.pieces[0].name != self.file.name


def md5s_of(paths: Sequence[Path], progress: Callable[[int], object] | None = None) -> tuple[list[str], str]:
    """The MD5 of each of ``paths`` and of them joined, in one read (a split file's parts and the file)."""
    joined = hashlib.md5(usedforsecurity=False)
    each = []
    for path in paths:
        digest = hashlib.md5(usedforsecurity=False)
        with open_regular(path, 1 << 50) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                joined.update(chunk)
                if progress:
                    progress(len(chunk))
        each.append(digest.hexdigest())
    return each, joined.hexdigest()


def md5_of(path: Path) -> str:
    """The MD5 of one file."""
    return md5s_of([path])[1]


def read_overrides(path: Path) -> dict[str, str]:
    """{name: md5} from an md5sum-style file (``MD5  NAME`` or ``MD5 *NAME``; ``#`` comments)."""
    with open_regular(path, OVERRIDE_LIMIT) as handle:
        text = handle.read().decode("utf-8", errors="replace")
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise JeopardaError(f"{path}: line {number} is not 'MD5  NAME' (32 hex digits, two spaces, a file name)")
        out[match["name"]] = match["md5"].lower()
    return out


def _natural(name: str) -> list[int | str]:
    """Sort key: numbers by value (part2 before part10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _part_of(name: str, whole: str) -> bool:
    """Whether ``name`` names a part of ``whole``: ``whole.000``, ``whole.part1``, ``wholeaa``."""
    return name.startswith(whole) and re.fullmatch(r"\.?[A-Za-z0-9_-]+", name[len(whole):]) is not None


def plan_items(files: Sequence[RemoteFile], base_url: str | None, overrides: dict[str, str],
               override_file: Path | None = None, all_names: Sequence[str] = ()) -> list[Item]:
    """The files as fetched: from ``base_url`` (a mirror) where given, checked against the
    overrides where they name a file (or its parts), else against the published MD5. A split
    file's parts are each checked, and joined they must still match the file's MD5."""
    known = set(all_names) | {f.name for f in files}
    for name in overrides:
        if name not in known and not any(_part_of(name, k) for k in known):
            raise JeopardaError(f"{override_file}: {name} is not a file of this data set "
                                f"(its files: {', '.join(sorted(known))})")
    items = []
    for remote in files:
        base = base_url if base_url is not None else remote.base_url
        parts = sorted((n for n in overrides if n not in known and _part_of(n, remote.name)), key=_natural)
        if remote.name in overrides:
            remote = replace(remote, md5=overrides[remote.name], size=None, source=str(override_file),
                             unpacked_bytes=0)  # another file: the published figures no longer hold
        if parts:  # each part checked by its line, the parts joined by the file's own MD5
            pieces = tuple(Piece(n, overrides[n], None, base + n) for n in parts)
            items.append(Item(remote, pieces, remote.md5))
        else:
            items.append(Item(remote, (Piece(remote.name, remote.md5, remote.size, base + remote.name),), remote.md5))
    return items
