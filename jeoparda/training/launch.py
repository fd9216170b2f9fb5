"""``jeoparda train`` end to end: environment, device, backend, run folder, the loop."""
from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import Backend, create_backend
from jeoparda.cluster.env import ClusterEnv, detect
from jeoparda.cluster.session import root_decides, run_folder
from jeoparda.config import RunConfig
from jeoparda.devices import bind_gpu, collectives
from jeoparda.errors import JeopardaError, one_line
from jeoparda.lifeline import signal_when_gone
from jeoparda.loaders.partition import with_gathered_node
from jeoparda.training import checkpoint
from jeoparda.training.loop import Say, Trainer
from jeoparda.training.preempt import EXIT_PREEMPTED, Preempted, PreemptFlag, check_in_setup
from jeoparda.training.results import RESULTS_NAME
from jeoparda.training.run_folder import prepare_train_dir
from jeoparda.training.setup import configure_threads


def is_collective_failure(exc: BaseException) -> bool:
    """A failed collective: a peer died, the network broke, or the timeout passed."""
    dist_error = getattr(torch.distributed, "DistError", ())
    text = str(exc).lower()
    return isinstance(exc, dist_error) or any(w in text for w in ("gloo", "nccl", "connection", "timed out"))


def wants_resume(run_dir: Path, resume: bool, if_checkpoint: bool) -> bool:
    """--resume always continues; --resume-if-checkpoint continues only when a checkpoint exists."""
    return resume or (if_checkpoint and checkpoint.newest(run_dir) is not None)


def _open_run_dir(run_dir: Path, cfg: RunConfig, resume: bool, if_checkpoint: bool) -> bool:
    """Rank 0's decision: whether the run resumes, with its folder created or checked."""
    resume = wants_resume(run_dir, resume, if_checkpoint)
    prepare_train_dir(run_dir, cfg, resume, restart=if_checkpoint)
    return resume


@contextlib.contextmanager
def session(cfg: RunConfig, out: Path | None, resume: bool, if_checkpoint: bool = False, name: str = ""
            ) -> Iterator[tuple[ClusterEnv, Backend, Accelerator, Path, bool]]:
    """Environment, backend, accelerator (a GPU of the rank's own), threads and run folder for one
    rank (default runs/<name, else the model>-<id>), and whether to resume; collective failures
    become one clear error; the backend is shut down on the way out."""
    if resume and out is None:
        raise JeopardaError("--resume needs --out RUN_DIR (the run to continue)")
    env = detect()
    if env.launcher == "torchrun":  # its agent is our parent: if a signal kills it, we are preempted
        signal_when_gone(os.getppid(), signal.SIGTERM)
    backend = create_backend(env, cfg.dist, collectives(cfg.dist.share_gpus))
    try:
        env = with_gathered_node(env, backend.gather_objects)  # mpirun --map-by node: nodes from host names
        accel = bind_gpu(env, backend.gather_objects, share=cfg.dist.share_gpus)
        backend.bind(accel.device)
        configure_threads(cfg, env, accel)
        run_dir = run_folder(backend, out, name or cfg.model, env)
        resume = root_decides(backend, partial(_open_run_dir, run_dir, cfg, resume, if_checkpoint))
        yield env, backend, accel, run_dir, resume
    except RuntimeError as exc:
        if not is_collective_failure(exc):
            raise
        first = one_line(exc)
        raise JeopardaError(f"rank {env.rank}: a collective operation failed; another rank died or "
                            f"did not answer within dist.timeout_s={cfg.dist.timeout_s:g} s ({first})") from None
    finally:
        backend.shutdown()


def train(cfg: RunConfig, out: Path | None, resume: bool, say: Say = print, if_checkpoint: bool = False,
          flag: PreemptFlag | None = None) -> int:
    """Run training on this rank; returns the exit status (0, or EXIT_PREEMPTED). ``flag``: the
    command's preemption flag, installed before the arguments were read (else one is installed here);
    a signal before training starts ends the run with EXIT_PREEMPTED and a line saying so."""
    with flag or PreemptFlag() as active:
        try:
            with session(cfg, out, resume, if_checkpoint) as (env, backend, accel, run_dir, resume):
                check_in_setup(backend, active, resume)  # before staging: a signal during the rendezvous
                status = Trainer(cfg, env, backend, accel, run_dir, say, active).run(resume)
                if backend.rank == 0:
                    say(f"results: {run_dir / RESULTS_NAME}")
                return status
        except Preempted as exc:
            if str(exc):
                say(f"jeoparda: {exc}")
            return EXIT_PREEMPTED
