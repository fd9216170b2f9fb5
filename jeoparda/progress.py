"""Progress reporting: a tqdm bar on a terminal, sparse plain lines otherwise (logs, Slurm)."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts units of work; ``update(n)`` is cheap, output is throttled."""

    def __init__(self, total: int, desc: str, unit: str = "patches", stream: TextIO | None = None,
                 enabled: bool = True, interval_s: float = 30.0) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.count = 0
        self._start = self._last = time.perf_counter()
        self._interval = interval_s
        self._bar = None
        self._enabled = enabled
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit.rstrip("es") or unit,
                             file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self._enabled and now - self._last >= self._interval:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.count / max(now - self._start, 1e-9)
        print(f"{self.desc}: {self.count}/{self.total} {self.unit} ({rate:.1f} {self.unit}/s)",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            self._line(time.perf_counter())

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._start
