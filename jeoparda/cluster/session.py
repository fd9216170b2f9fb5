"""What every distributed command shares: rank 0 decides and every rank learns the outcome, the run
folder, and the digest that proves the ranks' model replicas agree.

The helpers take any ``comm`` with a rank and object collectives (:class:`Comm`): a training
:class:`~jeoparda.cluster.backends.Backend`, or :func:`mpi_world` for ``jeoparda convert``, which runs
over mpi4py without torch.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError
from jeoparda.safe_files import refuse_link

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


class Comm(Protocol):
    """The object collectives a command needs; every rank calls each one, in the same order."""

    @property
    def rank(self) -> int: ...

    def broadcast_object(self, obj: Any) -> Any: ...

    def gather_objects(self, obj: Any) -> list[Any]: ...

    def barrier(self) -> None: ...


class Solo:
    """One process: every collective is the identity."""

    rank = 0

    def broadcast_object(self, obj: Any) -> Any:
        return obj

    def gather_objects(self, obj: Any) -> list[Any]:
        return [obj]

    def barrier(self) -> None:
        pass


class MpiComm:
    """An mpi4py communicator with a Backend's object collectives (all-gather, broadcast from 0)."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.rank: int = comm.Get_rank()

    def broadcast_object(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)

    def gather_objects(self, obj: Any) -> list[Any]:
        return list(self.comm.allgather(obj))

    def barrier(self) -> None:
        self.comm.Barrier()


def mpi_world(env: ClusterEnv) -> Solo | MpiComm:
    """MPI's world communicator when the launcher started several ranks, else :class:`Solo`."""
    if not env.is_distributed:
        return Solo()
    try:
        from mpi4py import MPI
    except ImportError:
        raise JeopardaError(f"running as rank {env.rank} of {env.world_size} ({env.launcher}) needs "
                            "mpi4py: pip install 'jeoparda[mpi]'") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != env.world_size:
        raise JeopardaError(f"MPI sees {comm.Get_size()} ranks but the launcher says "
                            f"{env.world_size}; with srun use --mpi=pmix")
    return MpiComm(comm)


def root_decides(comm: Comm, decide: Callable[[], T]) -> T:
    """Run ``decide`` on rank 0 only and return its result on every rank. A JeopardaError it raises
    is raised on every rank: rank 0's carries the message, the others' is empty (rank 0 alone
    prints it)."""
    result: Any = None
    failure: JeopardaError | None = None
    if comm.rank == 0:
        try:
            result = decide()
        except JeopardaError as exc:
            failure = exc
    problem, result = comm.broadcast_object((None if failure is None else str(failure), result))
    if failure is not None:
        raise failure
    if problem is not None:
        raise JeopardaError("")
    return result


def agree(comm: Comm, problem: str | None) -> None:
    """A collective check: where any rank has a problem, every rank raises the first one (in rank
    order), with its message on rank 0 and an empty one on the others."""
    problems = [p for p in comm.gather_objects(problem) if p]
    if problems:
        raise JeopardaError(problems[0] if comm.rank == 0 else "")


def default_run_dir(name: str, env: ClusterEnv) -> Path:
    """runs/<name>-<Slurm job id, or a time stamp> (name: the model, or ``sr``)."""
    return Path("runs") / f"{name}-{env.job_id or time.strftime('%Y%m%d-%H%M%S')}"


def run_folder(comm: Comm, chosen: Path | None, name: str, env: ClusterEnv) -> Path:
    """The run folder of every rank: ``chosen``, else rank 0's :func:`default_run_dir`."""
    return Path(comm.broadcast_object(str(chosen or default_run_dir(name, env))))


def prepare_run_dir(run_dir: Path, log_name: str, advice: str, resume: bool = False, restart: bool = False,
                    owned: tuple[str, ...] = ()) -> None:
    """Create or check the run folder. A run folder belongs to one run: where it holds the results
    log ``log_name`` or any of the run's other files ``owned`` (mllog.txt, config.yaml,
    checkpoints, ...), it is refused (with ``advice``) unless resuming. ``restart``
    (--resume-if-checkpoint without a checkpoint): an earlier attempt that died before its first
    checkpoint keeps its files under other names (``NAME-attempt-<time>``)."""
    found = [name for name in (log_name, *owned) if (run_dir / name).exists() or (run_dir / name).is_symlink()]
    if resume and not run_dir.is_dir():
        raise JeopardaError(f"{run_dir}: --resume but no such run folder")
    if not resume and found:
        if not restart:
            for name in found:
                refuse_link(run_dir / name)  # a planted link is named as what it is
            raise JeopardaError(f"{run_dir}: already holds a run ({', '.join(found)}); {advice}")
        kept = [_keep_aside(run_dir / name) for name in found]
        warnings.warn(f"{run_dir}: no checkpoint to resume from; starting again (the earlier attempt's files "
                      f"are kept as {', '.join(k.name for k in kept)})", stacklevel=2)
    run_dir.mkdir(parents=True, exist_ok=True)


def _keep_aside(path: Path) -> Path:
    """Rename ``path`` to a free ``STEM-attempt-<time>[-N]SUFFIX`` beside it (a link is renamed, not
    followed)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        kept = path.with_name(f"{path.stem}-attempt-{stamp}{f'-{n}' if n else ''}{path.suffix}")
        if not kept.exists() and not kept.is_symlink():
            path.rename(kept)
            return kept
    raise JeopardaError(f"{path}: cannot keep the earlier attempt's file aside (too many attempts)")


def state_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, to prove the replicas of all ranks agree."""
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def replica_digests(comm: Comm, model: torch.nn.Module) -> list[str]:
    """Every rank's :func:`state_digest` of its replica, in rank order, on every rank."""
    return comm.gather_objects(state_digest(model))
