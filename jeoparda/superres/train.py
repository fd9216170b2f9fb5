"""``jeoparda sr train``: both networks, data-parallel over whatever the launcher started.

Every rank builds the Wald pairs of its share of the training patches and draws its own windows;
gradients are averaged by the same backends as ``jeoparda train`` (DDP, Horovod, single). Rank 0
logs to ``RUN_DIR/results.jsonl``, evaluates the result on held-out patches and writes the model
file with those figures in it.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import create_backend
from jeoparda.cluster.env import ClusterEnv, detect
from jeoparda.cluster.session import agree, prepare_run_dir, replica_digests, root_decides, run_folder
from jeoparda.cluster.system import identify
from jeoparda.config import DistConfig
from jeoparda.devices import bind_gpu, collectives
from jeoparda.errors import JeopardaError
from jeoparda.progress import Progress
from jeoparda.safe_files import refuse_link
from jeoparda.superres.data import load_split, native_patches
from jeoparda.superres.evaluate import evaluate
from jeoparda.superres.model_file import SRModel, save_model
from jeoparda.superres.network import SRPair
from jeoparda.superres.options import SRTrainOptions
from jeoparda.superres.pairs import GROUPS
from jeoparda.superres.windows import WindowPool
from jeoparda.training.records import RunEnd, RunStart, SRSteps
from jeoparda.training.results import RESULTS_NAME, ResultsLog, git_sha, versions
from jeoparda.training.setup import auto_threads

Say = Callable[[str], object]
LOSSES = {"mse": torch.nn.functional.mse_loss, "l1": torch.nn.functional.l1_loss}  # options.LOSS_NAMES


def _cosine(steps: int) -> Callable[[int], float]:
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


def _held_out(opts: SRTrainOptions) -> tuple[str, list]:
    """Evaluation patches: the eval split, else (with a warning) the training patches."""
    patches = [bands for _, bands in native_patches(opts.data, opts.eval_split, opts.eval_patches)]
    if patches:
        return opts.eval_split, patches
    warnings.warn(f"{opts.data}: no {opts.eval_split} patches; the model's figures are on training patches",
                  stacklevel=2)
    return opts.split, load_split(opts.data, opts.split, opts.eval_patches)


def train_sr(opts: SRTrainOptions, say: Say = print) -> dict[str, Any]:
    """Train, evaluate and save; returns the eval figures (on every rank)."""
    opts.check()
    env = detect()
    backend = create_backend(env, DistConfig(backend=opts.backend), collectives())
    try:
        accel = bind_gpu(env, backend.gather_objects)
        backend.bind(accel.device)
        if accel.device.type == "cpu":
            torch.set_num_threads(auto_threads(env))
        return _train(opts, env, backend, accel, say)
    finally:
        backend.shutdown()


def _prepare_run_dir(run_dir: Path, model_file: Path) -> None:
    """Rank 0: the run folder, made or checked; a link at its log or at the model file is refused."""
    prepare_run_dir(run_dir, RESULTS_NAME, "choose another --run-dir")
    refuse_link(run_dir / RESULTS_NAME)
    refuse_link(Path(model_file))


def _train(opts: SRTrainOptions, env: ClusterEnv, backend: Any, accel: Accelerator, say: Say) -> dict[str, Any]:
    device = accel.device
    root = backend.rank == 0
    run_dir = run_folder(backend, opts.run_dir, "sr", env)
    root_decides(backend, partial(_prepare_run_dir, run_dir, opts.out))
    log = ResultsLog(run_dir, root)
    start = time.perf_counter()
    pools, count = _pools(opts, backend)
    torch.manual_seed(opts.seed)
    pair = SRPair(opts.features, opts.blocks).to(device)
    gpus = env.local_size if accel.gpu else 0
    system, system_info = root_decides(backend, partial(identify, "", env, accel.info, gpus, env.nodes, str(opts.data)))
    log.write(RunStart(system=system, system_info=system_info,
                       job="sr", run_id=run_dir.name, model="sr-dsen2", task="superres", dataset=str(opts.data),
                       backend=backend.name, data_backend="memory", world_size=backend.world_size, nodes=env.nodes,
                       gpus_per_node=gpus, device=accel.kind,
                       device_name=accel.name, batch_size_per_worker=opts.batch,
                       global_batch_size=opts.batch * backend.world_size, mode="weak", steps=opts.steps,
                       stage_time_s=time.perf_counter() - start, train_patches=count,
                       windows={k: len(p) for k, p in pools.items()},
                       config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
                       versions=versions(), git_sha=git_sha()))
    train_start = time.perf_counter()
    _steps(opts, backend, accel, pair, pools, log)
    train_s = time.perf_counter() - train_start
    replica = replica_digests(backend, pair)
    if len(set(replica)) != 1:
        raise JeopardaError(f"ranks disagree on the trained weights ({len(set(replica))} versions)")
    patches = sum(backend.gather_objects(count))
    figures: dict[str, Any] = {}
    if root:
        figures = _finish(opts, pair.cpu(), log, {"patches": patches, "world_size": backend.world_size,
                                                   "train_time_s": train_s, "replica_sha256": replica[0],
                                                   "total_time_s": time.perf_counter() - start}, run_dir, say)
    backend.barrier()
    return figures


def _pools(opts: SRTrainOptions, backend: Any) -> tuple[dict[str, WindowPool], int]:
    """This rank's share of the training patches as window pools, and how many patches it read."""
    patches: list = []
    try:
        patches = load_split(opts.data, opts.split, opts.patches, (backend.rank, backend.world_size))
    except JeopardaError as exc:
        agree(backend, str(exc))
    else:  # outside the try: the error agree() raises here must not enter a second round
        agree(backend, None)
    bar = Progress(len(patches) * len(GROUPS), "sr pairs", enabled=backend.rank == 0)
    pools = {name: WindowPool(g, patches, opts.mtf, bar.update) for name, g in GROUPS.items()}
    bar.close()
    return pools, len(patches)


def _steps(opts: SRTrainOptions, backend: Any, accel: Accelerator, pair: SRPair,
           pools: dict[str, WindowPool], log: ResultsLog) -> None:
    """The optimisation: both networks every step, gradients averaged by the backend."""
    model = backend.wrap_model(pair)
    optimizer = backend.wrap_optimizer(torch.optim.Adam(pair.parameters(), lr=opts.lr), pair)
    backend.sync_initial_state(pair, optimizer)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(opts.steps))
    scaler = torch.amp.GradScaler(enabled=False)
    rng = np.random.default_rng([opts.seed, backend.rank])
    loss_fn = LOSSES[opts.loss]
    bar = Progress(opts.steps, "sr train", unit="steps", enabled=backend.rank == 0)
    losses = torch.zeros(2, device=accel.device)
    t0 = time.perf_counter()
    for step in range(1, opts.steps + 1):
        (x20, y20), (x60, y60) = (pools[g].sample(rng, opts.batch, opts.window) for g in GROUPS)
        out20, out60 = model(accel.to_device(x20), accel.to_device(x60))
        l20 = loss_fn(out20, accel.to_device(y20))
        l60 = loss_fn(out60, accel.to_device(y60))
        optimizer.zero_grad()  # Horovod's optimiser takes no set_to_none (None is torch's default)
        (l20 + l60).backward()
        backend.optimizer_step(optimizer, scaler)
        schedule.step()
        losses += torch.stack([l20.detach(), l60.detach()])
        bar.update(1)
        if step == 1:  # set-up is over: a rank that stops answering now ends the job within the timeout
            backend.set_timeout(DistConfig().timeout_s)
        if step % opts.log_every == 0 or step == opts.steps:
            n = opts.log_every if step % opts.log_every == 0 else step % opts.log_every
            mean = (backend.all_reduce(losses.clone()) / (n * backend.world_size)).tolist()
            accel.synchronize()
            elapsed = time.perf_counter() - t0
            log.write(SRSteps(step=step, loss_20m=mean[0], loss_60m=mean[1], lr=float(schedule.get_last_lr()[0]),
                              steps_time_s=elapsed, windows_per_s=2 * n * opts.batch * backend.world_size / elapsed))
            losses.zero_()
            t0 = time.perf_counter()
    bar.close()


def _change(reduction: Any) -> str:
    return f"{100 * abs(reduction):.1f} % {'lower' if reduction >= 0 else 'higher'}"


def _finish(opts: SRTrainOptions, pair: SRPair, log: ResultsLog, facts: dict[str, Any], run_dir: Path,
            say: Say) -> dict[str, Any]:
    """Rank 0: evaluate on held-out patches, write the model with its figures, close the log."""
    split, held_out = _held_out(opts)
    bar = Progress(len(held_out), "sr eval")
    figures = {"split": split, **evaluate(pair, held_out, opts.mtf, bar.update)}
    bar.close()
    training = {"data": str(opts.data), "split": opts.split, "patches": facts["patches"], "steps": opts.steps,
                "batch": opts.batch, "window": opts.window, "lr": opts.lr, "loss": opts.loss,
                "world_size": facts["world_size"], "seed": opts.seed, "train_time_s": facts["train_time_s"]}
    sha = save_model(SRModel(pair, opts.features, opts.blocks, opts.mtf, training=training, eval=figures), opts.out)
    log.write(RunEnd(total_time_s=facts["total_time_s"], train_time_s=facts["train_time_s"], steps=opts.steps,
                     eval=figures, model=str(opts.out), model_sha256=sha, replica_sha256=facts["replica_sha256"],
                     status="completed"))
    say(f"model: {opts.out} (sha256 {sha[:12]}); results: {run_dir / RESULTS_NAME}")
    say(f"{split} ({figures['patches']} patches, reduced scale): RMSE 20 m {figures['rmse_20m']:.1f} vs "
        f"bicubic {figures['bicubic_rmse_20m']:.1f} ({_change(figures['rmse_20m_reduction'])}); "
        f"60 m {figures['rmse_60m']:.1f} vs {figures['bicubic_rmse_60m']:.1f} "
        f"({_change(figures['rmse_60m_reduction'])})")
    return figures
