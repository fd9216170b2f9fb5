"""Preemption: SIGTERM and SIGUSR1 (Slurm's warning before the time limit) ask the run to stop,
checkpoint where there is something to keep and exit with EXIT_PREEMPTED so the job script can
requeue (docs/training.md, "Results log, checkpoints, preemption").

``jeoparda train`` installs one :class:`PreemptFlag` before anything else, so a signal in any phase
(set-up, staging, training, the final test) is noted, never fatal; the ranks agree on it at
collective points and every phase ends with EXIT_PREEMPTED.
"""
from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any, TypeVar

from jeoparda.errors import JeopardaError

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
T = TypeVar("T")


class Preempted(JeopardaError):
    """A preemption signal stopped the run before anything worth a checkpoint was done (set-up,
    staging) or during the final test; the message says what is kept."""

    exit_code = EXIT_PREEMPTED


class PreemptFlag:
    """Notes the first preemption signal and the phase it came in. Entering installs the handlers
    (nested entries keep them: the command and the loop may both enter); leaving the outermost
    restores what was there before."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.phase = "set-up"  # set-up, staging, training, test: where the run is now
        self.signal_phase = ""  # where it was when the signal came
        self._previous: dict[int, Any] = {}
        self._depth = 0

    def __enter__(self) -> PreemptFlag:
        if self._depth == 0:
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        self._depth += 1
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal, self.signal_phase = signum, self.phase

    @property
    def raised(self) -> bool:
        return self.signal is not None

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()


def outlast_signals(flag: PreemptFlag) -> None:
    """After a preemption, ignore further preemption signals while the process exits: the first
    rank to exit 75 makes ``srun --kill-on-bad-exit`` send SIGTERM to the others, and a rank still
    shutting down would die of it (status 143, so the job is not requeued) instead of exiting 75."""
    if flag.raised:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum is not None else "a signal"


def check_in_setup(comm: Any, flag: PreemptFlag, resume: bool) -> None:
    """A collective check (every rank calls it; ``comm`` has ``gather_objects`` and ``rank``): where
    any rank got a preemption signal, every rank raises :class:`Preempted`, rank 0's with the line
    saying nothing is lost."""
    seen = [s for s in comm.gather_objects((flag.signal, flag.signal_phase)) if s[0] is not None]
    if not seen:
        return
    signum, phase = seen[0]
    kept = ("the run's newest checkpoint is kept; run again with --resume" if resume else
            "nothing to lose; run again with --resume-if-checkpoint")
    raise Preempted(f"preempted by {signal_name(signum)} during {phase}: {kept}" if comm.rank == 0 else "")


def watch(batches: Iterable[T], every: int, any_raised: Callable[[], bool]) -> Iterator[T]:
    """``batches``, asking ``any_raised`` (a collective: every rank must read as many batches)
    every ``every`` batches; :class:`Preempted` when it answers yes."""
    for n, batch in enumerate(batches, 1):
        if n % every == 0 and any_raised():
            raise Preempted("")
        yield batch
