"""The synthetic writers' worker pool: an ordered, bounded parallel map (``jeoparda synth --workers N``).

Work goes out in chunks of a few patches to N spawned processes (fork is unsafe under MPI and with
threads), at most ``WINDOW_PER_WORKER x N`` chunks in flight, and the results come back in the
order the chunks were given: the output never depends on N, and results never pile up in memory.
``workers=1`` runs every chunk in this process. Workers die with the process that started them.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from jeoparda.errors import JeopardaError
from jeoparda.lifeline import die_with

T = TypeVar("T")
R = TypeVar("R")

#: Patches per chunk (one task for a worker).
CHUNK = 16
#: Chunks in flight per worker: enough to keep every worker busy, few enough to hold little memory.
WINDOW_PER_WORKER = 4
#: The most workers ``default_workers`` offers.
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """The CPUs this process may use, at most ``MAX_DEFAULT_WORKERS``."""
    return max(1, min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0))))


def chunked(items: Sequence[T], size: int = CHUNK) -> list[Sequence[T]]:
    """``items`` cut into consecutive slices of ``size`` (the last one shorter)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def ordered_map(fn: Callable[[T], R], tasks: Sequence[T], workers: int = 1) -> Iterator[R]:
    """``fn(task)`` for every task, in order: in this process (``workers`` 1, or a single task)
    or in ``workers`` spawned processes with a bounded window of tasks in flight. ``fn`` and the
    tasks must pickle (a module-level function, or a ``functools.partial`` of one).

    A worker that dies (killed, out of memory) ends the map with a one-line JeopardaError."""
    workers = min(workers, len(tasks))
    if workers <= 1:
        for task in tasks:
            yield fn(task)
        return
    window = WINDOW_PER_WORKER * workers
    pending: deque[Future[R]] = deque()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=die_with,
                             initargs=(os.getpid(),)) as pool:
        try:
            for task in tasks:
                pending.append(pool.submit(fn, task))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise JeopardaError("a synth worker process died (out of memory or killed); "
                                "run the command again in an empty folder") from None
        finally:
            for future in pending:
                future.cancel()
