"""Byte progress with rate and ETA, shared by threads: a tqdm bar on a terminal, sparse lines in logs."""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    """1,234,567 → '1.2 MB' (decimal units, as the publishers list sizes)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Interrupted(Exception):
    """The run was interrupted (its stop event set): raised in a worker thread by ``ByteMeter.add``
    and by a transfer that was waiting or reading, so the thread ends at its next chunk."""


class ByteMeter:
    """Counts bytes towards ``total``; ``add(n)`` may be called from several threads (negative
    ``n`` when a transfer restarts from zero). Once ``stop`` is set, ``add`` raises ``Interrupted``:
    that is how an interrupted run ends its worker threads at their next chunk."""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, interval_s: float = 30.0,
                 stop: threading.Event | None = None, already: int = 0, bar: bool = True) -> None:
        self.total, self.desc = total, desc
        self._stop = stop
        self.stream = stream or sys.stderr
        self.count = self._already = already  # bytes held before this run: counted, but not in the rate
        self._lock = threading.Lock()
        self._start = self._last = time.perf_counter()
        self._interval = interval_s
        self._bar = None
        if bar and getattr(self.stream, "isatty", lambda: False)():  # one bar: the others print lines
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=already, desc=desc, unit="B", unit_scale=True,
                             unit_divisor=1000, file=self.stream, dynamic_ncols=True)

    def add(self, n: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise Interrupted
        with self._lock:
            self.count += n
            if self._bar is not None:
                self._bar.update(n)
                return
            now = time.perf_counter()
            if now - self._last >= self._interval:
                self._last = now
                print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """'desc: 1.2 GB of 63.3 GB (2 %), 45.0 MB/s, ETA 0:23:10'."""
        elapsed = max((now or time.perf_counter()) - self._start, 1e-9)
        rate = max(self.count - self._already, 0) / elapsed
        share = f" ({100 * self.count / self.total:.0f} %)" if self.total else ""
        eta = f", ETA {human_seconds((self.total - self.count) / rate)}" if rate > 0 and self.total > self.count else ""
        return (f"{self.desc}: {human_bytes(self.count)} of {human_bytes(self.total)}{share}, "
                f"{human_bytes(rate)}/s{eta}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            print(self.line(), file=self.stream, flush=True)
