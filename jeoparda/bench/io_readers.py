"""The reads of one rank in ``jeoparda bench io``: training's access pattern, without training.

A rank's ``data.workers`` reader processes (none: the rank itself) take the epoch's steps round
robin, as the torch loader's DataLoader deals them, and read each step's batch with the loader's
own :class:`~jeoparda.loaders.split_reader.SplitReader` (sorted indices, one sequential read per
run of neighbours, the same shuffle blocks): uint16 arrays and targets, nothing normalised, no
model. The processes start as the loader's do, before the clock (a pass times reads; start-up is
timed apart), and end with the rank; one that dies ends the pass with one line.
"""
from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from jeoparda.errors import JeopardaError, one_line
from jeoparda.lifeline import die_with
from jeoparda.loaders.base import Planner
from jeoparda.loaders.readers import reader_context
from jeoparda.loaders.split_reader import SplitReader


@dataclass(frozen=True)
class PassTiming:
    """One rank's pass: wall seconds, patches and bytes delivered, and when its first batch was in."""

    seconds: float
    images: int
    bytes: int
    first_batch_s: float


def patch_bytes(reader: SplitReader) -> int:
    """Bytes one patch stands for as the reader delivers it from the shards: the stored uint16
    bands, the Sentinel-1 channels it reads, its targets (class vector or reference map)."""
    c, h, w = reader.stored_shape
    s1 = len(reader.s1) * h * w * 4
    targets = h * w if reader.masks else reader.layout.classes
    return 2 * c * h * w + s1 + targets


_STATE: dict[str, Any] = {}
START_LIMIT_S = 300.0


def _init(reader: SplitReader, planner: Planner, owner: int, started: Any) -> None:
    die_with(owner)  # a reader never outlives its rank
    _STATE.update(reader=reader, planner=planner, started=started)
    with started.get_lock():
        started.value += 1


def _ready(workers: int) -> bool:
    """Wait until every reader has started (each takes one of these, so all of them start)."""
    started = _STATE["started"]
    deadline = time.monotonic() + START_LIMIT_S
    while started.value < workers and time.monotonic() < deadline:
        time.sleep(0.005)
    return started.value >= workers


def read_steps(reader: SplitReader, planner: Planner, epoch: int, first: int, every: int) -> tuple[int, float, float]:
    """Read steps ``first, first + every, ...`` of ``epoch``: (patches that count, monotonic time
    the first batch was in, monotonic time the last was). Padding (the repeats that even out the
    last evaluation batches) is read, as training reads it, but not counted."""
    plan = planner.plan(epoch)
    images, first_in = 0, float("nan")
    for step in range(first, plan.steps, every):
        indices, mask = plan.step_batch(step)
        reader.read(indices)
        images += int(mask.sum())
        if np.isnan(first_in):
            first_in = time.monotonic()
    return images, first_in, time.monotonic()


def _pooled(epoch: int, first: int, every: int) -> tuple[int, float, float]:
    return read_steps(_STATE["reader"], _STATE["planner"], epoch, first, every)


class RankReaders:
    """A rank's readers: ``workers`` processes (0: this process) holding the split reader and
    planner, started as the torch loader starts its own (a forkserver with torch and h5py loaded)."""

    def __init__(self, reader: SplitReader, planner: Planner, workers: int, rank: int = 0) -> None:
        self.reader, self.planner, self.workers, self.rank = reader, planner, workers, rank
        self.per_patch = patch_bytes(reader)
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            ctx = reader_context()
            started = ctx.Value("i", 0)
            self._pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init,
                                             initargs=(reader, planner, os.getpid(), started))
            waits = [self._pool.submit(_ready, workers) for _ in range(workers)]
            if not all(self._get(w) for w in waits):
                self.close()
                raise JeopardaError(f"rank {rank}: bench io: {workers - started.value} of {workers} reader "
                                    f"processes did not start within {START_LIMIT_S:.0f} s")

    def _get(self, future: Future) -> Any:
        """A reader's result; a reader that died or failed is one line naming the rank."""
        try:
            return future.result()
        except BrokenProcessPool:
            raise JeopardaError(f"rank {self.rank}: a bench io reader process died (killed, or out of "
                                "memory)") from None
        except JeopardaError as exc:
            raise JeopardaError(f"rank {self.rank}: {exc}") from None
        except Exception as exc:  # a reader's error: its message names the shard
            raise JeopardaError(f"rank {self.rank}: a bench io reader failed: {one_line(exc)}") from None

    def read_pass(self, epoch: int) -> PassTiming:
        """Read this rank's share of ``epoch`` once, every reader at work, steps dealt round robin
        as the DataLoader deals them; the clock runs from the first request to the last batch in,
        and the first batch is step 0's (the one training waits for)."""
        start = time.monotonic()
        if self._pool is None:
            parts = [read_steps(self.reader, self.planner, epoch, 0, 1)]
        else:
            pending = [self._pool.submit(_pooled, epoch, w, self.workers) for w in range(self.workers)]
            parts = [self._get(p) for p in pending]
        images = sum(p[0] for p in parts)
        end = max(p[2] for p in parts)
        first = parts[0][1] if not np.isnan(parts[0][1]) else end
        return PassTiming(end - start, images, images * self.per_patch, first - start)

    def shard_ids(self, epoch: int) -> list[int]:
        """The shards this rank's share of ``epoch`` touches."""
        plan = self.planner.plan(epoch)
        shards = np.searchsorted(self.reader.offsets, plan.indices, side="right") - 1
        return sorted({int(s) for s in np.unique(shards)})

    def digest(self, epoch: int) -> str:
        """SHA-256 of the patch indices this rank reads in ``epoch``, in step order: what training's
        loader would read (the tests compare it with the loader's own plan)."""
        return hashlib.sha256(np.ascontiguousarray(self.planner.plan(epoch).indices, np.int64).tobytes()).hexdigest()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.reader.close()
