"""The torch loader's reader processes: how they start (a forkserver), what they do first (die with
their trainer, leave the preemption signals to it), and how the trainer learns that one has died."""
from __future__ import annotations

import multiprocessing as mp
import os
import select
import signal
import time
from multiprocessing import forkserver, resource_tracker
from typing import Any

from torch.utils.data import get_worker_info

from jeoparda.lifeline import die_with

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # jeoparda.training.preempt.SIGNALS


def reader_context() -> mp.context.BaseContext:
    """Reader processes start from a clean forkserver (torch and the loader preloaded), never
    as forks of the caller: a fork inherits whatever the caller holds (a running DALI pipeline,
    other loaders' iterators, CUDA state) and dies when its garbage collector finalises them."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "h5py", "jeoparda.loaders.torch_loader"])
    _start_helpers_deaf()
    return ctx


def _start_helpers_deaf() -> None:
    """Start the forkserver and the resource tracker (where not yet running) with the preemption
    signals blocked: Slurm sends them to every process of the job step, and a forkserver killed by
    one ends the readers (torch's watchdog in each watches its parent). A blocked signal stays
    blocked across ``exec``, and neither helper unblocks it. Blocking (only this thread, rather than
    ignoring, process-wide) loses no signal meant for the trainer meanwhile, from any thread."""
    if not hasattr(signal, "pthread_sigmask"):
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        resource_tracker.ensure_running()  # unblocks SIGTERM when it starts the tracker: again
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def start_reader(owner: int, worker_id: int) -> None:
    """A reader process's first act: it dies with ``owner``, the trainer (its parent is the
    forkserver, which torch's own watchdog watches, so without this it outlives a killed trainer
    and holds the job's output open), and leaves the preemption signals to the trainer."""
    die_with(owner)
    _leave_signals_to_the_trainer(worker_id)


def _leave_signals_to_the_trainer(worker_id: int) -> None:
    """Readers ignore the preemption signals while their loader runs: Slurm sends them to every
    process of a job step, and a reader that died of one would fail the step the trainer is about
    to checkpoint. Once the loader is closing, the signals go to whatever handled them before (the
    default: the reader ends, which is how torch and multiprocessing stop stragglers; an ignored
    signal, as a reader may inherit, counts as the default here). The forkserver hands the signals
    over blocked (:func:`_start_helpers_deaf`): unblocked here, once handled."""
    info = get_worker_info()
    closing = getattr(info.dataset, "closing", None) if info is not None else None
    before: dict[int, Any] = {}

    def handle(signum: int, frame: object) -> None:
        if closing is not None and bool(closing[0]):
            earlier = before[signum]
            signal.signal(signum, signal.SIG_DFL if earlier in (None, signal.SIG_IGN) else earlier)
            os.kill(os.getpid(), signum)

    for sig in SIGNALS:
        before[sig] = signal.signal(sig, handle)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


class ReaderWatch:
    """Whether any of a loader's reader processes (multiprocessing ``Process`` objects) has ended:
    one poll of a pidfd per reader, a few microseconds whatever their number (asking each process,
    as torch does every 5 s, costs tens of microseconds per reader: too much for every batch).
    A forkserver child's sentinel is a socket to the forkserver, which reports a vanished forkserver
    as the reader's end: only where there are no pidfds (not Linux >= 5.3) is the sentinel watched."""

    def __init__(self, readers: list[Any]) -> None:
        self.readers = readers
        self.poller = select.poll()
        self._pidfds: dict[int, int] = {}  # reader index -> its pidfd
        for i, reader in enumerate(readers):
            try:
                self._pidfds[i] = os.pidfd_open(reader.pid)
            except (AttributeError, OSError):  # no pidfds here, or the reader is already gone
                self.poller.register(reader.sentinel, select.POLLIN)
            else:
                self.poller.register(self._pidfds[i], select.POLLIN)

    def ended(self) -> bool:
        return bool(self.poller.poll(0))

    def dead(self) -> str:
        """PIDs and fates of the readers that have ended ('' when all live)."""
        ended = [(r.pid, self._fate(r)) for i, r in enumerate(self.readers) if self._ended(i)]
        return ", ".join(f"{pid} (killed by signal {-code})" if code is not None and code < 0
                         else f"{pid} (exit status {'unknown' if code is None else code})" for pid, code in ended)

    def _ended(self, i: int) -> bool:
        fd = self._pidfds.get(i)
        if fd is None:
            return not self.readers[i].is_alive()
        return bool(select.select([fd], [], [], 0)[0])

    @staticmethod
    def _fate(reader: Any, wait_s: float = 1.0) -> int | None:
        """The exit code of an ended reader: its forkserver reports it just after reaping it."""
        deadline = time.monotonic() + wait_s
        while reader.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return reader.exitcode

    def close(self) -> None:
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()

    def __del__(self) -> None:
        self.close()
