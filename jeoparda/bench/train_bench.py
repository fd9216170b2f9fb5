"""``jeoparda bench train``: training throughput over timed blocks of steps.

After ``warmup`` untimed steps, ``blocks`` blocks of ``steps`` steps are timed (device synchronised
at the block edges). Per block: images/s over all workers; the summary gives the mean and a 95 %
interval of +-1.96 standard deviations over the blocks (as Horovod's synthetic benchmark does),
and per worker. Time is split into data wait (blocked on the loader), compute (the same steps
timed once more with gradient synchronisation off, where the backend allows it; on one worker,
which communicates nothing, the step less the data wait) and exposed communication (the rest).
The results log has the training schema, one ``epoch`` record per timed block, so
``jeoparda report`` reads it like a training run.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from jeoparda.bench.loader_bench import endless
from jeoparda.training.bottleneck import SPLIT_KEYS
from jeoparda.training.loop import Trainer
from jeoparda.training.records import Epoch, RunEnd


def _steps(trainer: Trainer, batches, count: int, sync_grads: bool = True) -> tuple[float, float, float]:
    """Run ``count`` training steps; returns (seconds, data wait seconds, mean loss)."""
    trainer.accel.synchronize()
    start, wait, losses = time.perf_counter(), 0.0, []
    for _ in range(count):
        t0 = time.perf_counter()
        batch = next(batches)
        wait += time.perf_counter() - t0
        losses.append(trainer.step(batch, sync_gradients=sync_grads))
    trainer.accel.synchronize()
    return time.perf_counter() - start, wait, float(torch.stack(losses).mean())


def run(trainer: Trainer, warmup: int, steps: int, blocks: int) -> dict[str, Any]:
    world, batch = trainer.backend.world_size, trainer.cfg.train.batch_size
    batches = endless(trainer.train_loader)
    trainer.net.train()
    _steps(trainer, batches, warmup)
    trainer.backend.set_timeout(trainer.cfg.dist.timeout_s)  # set-up (compilation, autotuning) is over
    rates, waits, totals = [], [], []
    for block in range(blocks):
        seconds, wait, loss = _steps(trainer, batches, steps)
        rate = steps * batch * world / seconds
        rates.append(rate)
        waits.append(wait)
        totals.append(seconds)
        trainer.recorder.write(Epoch(epoch=block + 1, epoch_time_s=seconds, train_images=steps * batch * world,
                                     images_per_s=rate, data_wait_s=wait, loss=loss,
                                     **trainer.recorder.compute_figures(rate)))
    compute = None  # one worker communicates nothing: its compute is the step less the data wait
    if world > 1 and trainer.backend.without_gradient_sync(trainer.net) is not None:
        seconds, wait, _ = _steps(trainer, batches, steps, sync_grads=False)
        compute = (seconds - wait) / steps
    step_s = statistics.mean(totals) / steps
    wait_s = statistics.mean(waits) / steps
    mean = statistics.mean(rates)
    half = 1.96 * statistics.pstdev(rates)
    found = trainer.recorder.step_verdict(step_s, wait_s, compute)
    return {"images_per_s": mean, "images_per_s_95": [mean - half, mean + half],
            "images_per_s_per_worker": mean / world, "step_s": step_s, "data_wait_s": wait_s,
            "compute_s": found["step_split"]["compute_s"], "communication_s": found["step_split"]["communication_s"],
            "world_size": world, "batch_size_per_worker": batch, "blocks": blocks, "steps_per_block": steps,
            "tflops_per_worker": None, "mfu": None, **trainer.recorder.compute_figures(mean),
            "bottleneck": found["bottleneck"], "bottleneck_note": found["bottleneck_note"]}


def bench_train(cfg: Any, out: Any, warmup: int, steps: int, blocks: int, say=print) -> dict[str, Any]:
    """Set up like ``jeoparda train``, log run_start, time the blocks, log run_end with the summary."""
    import time as _time

    from jeoparda.training.launch import session

    with session(cfg, out, resume=False) as (env, backend, accel, run_dir, _):
        trainer = Trainer(cfg, env, backend, accel, run_dir, say)
        trainer.recorder.start(trainer.task, trainer.train_loader, trainer.precision, trainer.global_batch,
                               job="bench")
        start = _time.perf_counter()
        summary = run(trainer, warmup, steps, blocks)
        found = {k: summary[k] for k in ("bottleneck", "bottleneck_note")}
        split = {k: summary[k] for k in SPLIT_KEYS}
        trainer.recorder.write(RunEnd(total_time_s=_time.perf_counter() - start, epochs=blocks, status="completed",
                                      bench=summary, val={}, test={}, step_split=split, **found))
        return {**summary, "run_dir": str(run_dir)}
