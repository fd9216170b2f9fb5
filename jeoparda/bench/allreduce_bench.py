"""``jeoparda bench allreduce``: all-reduce time and bandwidth over message sizes.

Sizes double from 4 KiB up to the gradient size of ResNet50 (its float32 parameters); each size is
timed ``iters`` times after ``warmup`` untimed calls, the device synchronised around each call; the
median is reported. As nccl-tests defines them: algorithm bandwidth = bytes / time, bus bandwidth =
algbw x 2(n-1)/n (what each link carries in a ring all-reduce; 0 with one process). Every size
also checks the reduced values, so a broken collective cannot pass as a fast one.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import Backend
from jeoparda.errors import JeopardaError


def message_sizes(max_bytes: int, min_bytes: int = 4096) -> list[int]:
    sizes, size = [], min_bytes
    while size < max_bytes:
        sizes.append(size)
        size *= 2
    return sizes + [max_bytes]


def run(backend: Backend, sizes: list[int], iters: int = 20, warmup: int = 3,
        accel: Accelerator | None = None) -> list[dict[str, Any]]:
    """Rows of bytes, median time and bandwidths; buffers live on ``accel`` (the CPU when None)."""
    accel = accel or Accelerator()
    n, device = backend.world_size, accel.device
    expected = n * (n + 1) / 2  # every rank contributes rank + 1
    rows = []
    for size in sizes:
        buf = torch.empty(size // 4, dtype=torch.float32, device=device)
        times = []
        for i in range(warmup + iters):
            buf.fill_(backend.rank + 1)
            accel.synchronize()
            start = time.perf_counter()
            backend.all_reduce(buf)
            accel.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
            if not torch.all(buf == expected):
                raise JeopardaError(f"all-reduce of {size} bytes returned wrong values (expected {expected})")
        t = statistics.median(times)
        algbw = size / t / 1e9
        rows.append({"bytes": size, "time_us": t * 1e6, "algbw_gb_s": algbw,
                     "busbw_gb_s": algbw * 2 * (n - 1) / n})
    return rows
