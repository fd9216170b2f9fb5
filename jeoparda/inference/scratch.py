"""A tile map's pixels while its windows are computed: raw row-major files beside the output.

``classes`` holds class index + 1 as uint8 (0: no patch), ``probability`` the winning class's
probability as float32. Both start sparse and zero (rank 0 creates them at full size); every rank
writes its windows' rows in place (windows never overlap), and one rank reads them back, row by row,
to write the COG. Memory stays bounded by a window, the map's size goes to disk.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from jeoparda.labels import NO_CLASS
from jeoparda.safe_files import open_write

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Scratch:
    """The scratch files of the map ``out`` (``height`` x ``width``); ``probabilities``: keep those too."""

    def __init__(self, out: Path, height: int, width: int, probabilities: bool) -> None:
        self.height, self.width = height, width
        self.kinds: dict[str, np.dtype] = {"classes": np.dtype(np.uint8)}
        if probabilities:
            self.kinds["probability"] = np.dtype(np.float32)
        self.paths = {kind: out.with_name(f".{out.name}.{kind}.scratch") for kind in self.kinds}
        self.fds: dict[str, int] = {}

    def bytes_needed(self) -> int:
        return sum(self.height * self.width * dtype.itemsize for dtype in self.kinds.values())

    def create(self) -> None:
        """Make the files empty at full size (one rank, before the others open them)."""
        for kind, path in self.paths.items():
            fd = open_write(path)  # truncated: a crashed run's pixels do not survive
            try:
                os.ftruncate(fd, self.height * self.width * self.kinds[kind].itemsize)
            finally:
                os.close(fd)

    def open(self) -> None:
        for kind, path in self.paths.items():
            self.fds[kind] = os.open(path, os.O_RDWR | _NOFOLLOW | os.O_CLOEXEC)

    def sync_close(self) -> None:
        """Written rows to disk, then closed: another node's rank may read them next."""
        for fd in self.fds.values():
            os.fsync(fd)
        self.close()

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def remove(self) -> None:
        self.close()
        for path in self.paths.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def write(self, top: int, left: int, classes: np.ndarray, probability: np.ndarray | None) -> None:
        """Rows of a window at (``top``, ``left``): class index + 1 (0: no patch) and probabilities."""
        for kind, block in (("classes", classes), ("probability", probability)):
            if kind not in self.fds or block is None:
                continue
            data = np.ascontiguousarray(block, self.kinds[kind])
            size = self.kinds[kind].itemsize
            for i, row in enumerate(data):
                os.pwrite(self.fds[kind], row.tobytes(), ((top + i) * self.width + left) * size)

    def _rows(self, kind: str, first: int, step: int, count: int) -> np.ndarray:
        dtype = self.kinds[kind]
        line = self.width * dtype.itemsize
        if step == 1:
            raw = os.pread(self.fds[kind], count * line, first * line)
        else:
            raw = b"".join(os.pread(self.fds[kind], line, (first + i * step) * line) for i in range(count))
        return np.frombuffer(raw, dtype).reshape(count, self.width)

    def class_rows(self, first: int, step: int, count: int) -> np.ndarray:
        """Class indices of rows ``first, first + step, ...``; no-data (255) where no patch lies."""
        raw = self._rows("classes", first, step, count)
        return np.where(raw == 0, NO_CLASS, raw - 1).astype(np.uint8)

    def probability_rows(self, first: int, step: int, count: int) -> np.ndarray:
        """Probabilities of the same rows; NaN where no patch lies."""
        covered = self._rows("classes", first, step, count) != 0
        return np.where(covered, self._rows("probability", first, step, count), np.float32(np.nan))
