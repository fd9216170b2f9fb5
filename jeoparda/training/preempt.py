"""Preemption: SIGTERM and SIGUSR1 (Slurm's warning before the time limit) ask the run to stop
after the current step, checkpoint and exit with EXIT_PREEMPTED so the job script can requeue."""
from __future__ import annotations

import signal
from types import FrameType
from typing import Any

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class PreemptFlag:
    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptFlag:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    @property
    def raised(self) -> bool:
        return self.signal is not None

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
