"""Which accelerator a process computes on, and the decisions that follow from it.

GPU binding: each rank takes one of the GPUs it sees, and no two ranks of a node take the same one.
The ranks of a node that see the same set of GPUs (all of the node's, or a socket's under
``--gpu-bind=closest``, or one each under ``--gpus-per-task=1``) share those GPUs out in rank
order; every rank then learns every other's choice, and a GPU taken twice stops the job with one
line instead of NCCL's "duplicate GPU" deep inside the first collective.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from jeoparda.accelerator import Accelerator, GpuAccelerator
from jeoparda.cluster.env import ClusterEnv
from jeoparda.cuda_runtime import CudaRuntime
from jeoparda.errors import JeopardaError

# The CUDA runtime every accelerator is made from; the test suite's stand-in replaces it.
RUNTIME: Any = CudaRuntime()

Gather = Callable[[Any], list[Any]]


def runtime() -> Any:
    """The CUDA runtime in use (torch.cuda, or the test suite's stand-in)."""
    return RUNTIME


def gpu_visible() -> bool:
    """Whether this process sees a GPU."""
    return bool(RUNTIME.is_available())


def collectives(share_gpus: bool = False) -> str:
    """The torch.distributed backend for this process's tensors: nccl with a GPU, else gloo; gloo
    also where ranks share GPUs (NCCL refuses two ranks on one GPU; gloo reduces CUDA tensors too)."""
    return str(RUNTIME.collectives) if gpu_visible() and not share_gpus else "gloo"


def parse_device(choice: str) -> Accelerator:
    """``--device auto|cpu|cuda|cuda:N`` of the single-process tools (convert, predict, bench infer).

    ``auto`` is the first visible GPU, else the CPU; ``cuda`` without a GPU, an index beyond the
    visible ones or an unknown word is one line."""
    if choice == "cpu" or (choice == "auto" and not gpu_visible()):
        return Accelerator()
    if choice == "auto":
        choice = "cuda"
    kind, _, number = choice.partition(":")
    if kind != "cuda" or (number and not number.isdigit()):
        raise JeopardaError(f"--device {choice!r}: use auto, cpu, cuda or cuda:N")
    if not gpu_visible():
        raise JeopardaError(f"--device {choice}: no CUDA GPU is visible to this process")
    index, count = int(number or 0), RUNTIME.device_count()
    if index >= count:
        raise JeopardaError(f"--device {choice}: this process sees {count} GPU{'s' if count != 1 else ''} "
                            f"(cuda:0..cuda:{count - 1}; CUDA_VISIBLE_DEVICES decides which)")
    accel = GpuAccelerator(RUNTIME, index)
    accel.make_current()
    return accel


def launcher_gather(env: ClusterEnv) -> Gather | None:
    """Gather an object from every rank without a backend: this rank's own when it runs alone;
    over MPI where an MPI launcher started the ranks; None where no channel reaches them all
    (torchrun, srun --mpi=none, or no mpi4py)."""
    if env.world_size == 1:
        return lambda obj: [obj]
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    world = MPI.COMM_WORLD
    return world.allgather if world.Get_size() == env.world_size else None


def assign_gpus(peers: list[tuple[int, str, tuple[str, ...]]]) -> dict[int, int]:
    """Every rank's GPU, as an index among the GPUs it sees. ``peers``: (rank, host, UUIDs of the
    GPUs it sees) of every rank. The ranks of a host that see the same GPUs take them in turn, in
    rank order. One pass over the job, so thousands of ranks cost nothing at start-up."""
    turns: dict[tuple[str, tuple[str, ...]], int] = {}
    chosen = {}
    for rank, host, uuids in sorted(peers):
        turn = turns.get((host, uuids), 0)
        turns[host, uuids] = turn + 1
        chosen[rank] = turn % len(uuids)
    return chosen


def bind_gpu(env: ClusterEnv, gather: Gather | None, share: bool = False) -> Accelerator:
    """This rank's accelerator: a GPU of its own (made current), or the CPU where none is visible.

    ``gather`` collects one object from every rank (the backend's, over a CPU channel: no GPU is
    chosen yet); from what all ranks see, each works out every rank's choice. Two ranks of one
    host on one GPU is a :class:`JeopardaError` unless ``share`` (dist.share_gpus) allows it.
    Without a gather (None) only a rank that sees a single GPU can be bound."""
    if not gpu_visible():
        return Accelerator()
    count = RUNTIME.device_count()
    uuids = tuple(RUNTIME.info(i).uuid for i in range(count))
    if gather is None and count > 1 and env.world_size > 1:
        raise JeopardaError(f"rank {env.rank} sees {count} GPUs and cannot tell which is its own without "
                            "reaching the other ranks: launch with mpirun or srun --mpi=pmix, or give each "
                            "rank one GPU (srun --gpus-per-task=1)")
    peers = gather((env.rank, env.hostname, uuids)) if gather is not None else [(env.rank, env.hostname, uuids)]
    if gather is not None and len(peers) != env.world_size:
        raise JeopardaError(f"rank {env.rank}: {len(peers)} of {env.world_size} ranks answered when choosing "
                            "GPUs; the launcher and the gathering channel disagree about the job")
    chosen = assign_gpus(peers)
    taken: dict[tuple[str, str], int] = {}
    for rank, host, seen in sorted(peers):
        uuid = seen[chosen[rank]]
        if (host, uuid) in taken and not share:
            raise JeopardaError(
                f"ranks {taken[host, uuid]} and {rank} on {host} both got GPU {uuid}: more ranks than GPUs "
                "on the node; start one rank per GPU (srun --gpus-per-task=1, or --ntasks-per-node equal to "
                "the GPUs per node), or allow sharing with dist.share_gpus=true")
        taken[host, uuid] = rank
    accel = GpuAccelerator(RUNTIME, chosen[env.rank])
    accel.make_current()
    return accel


def amp_precision(requested: str, accel: Accelerator) -> str:
    """The precision a run computes in: ``auto`` is bf16 on GPUs of compute capability 8.0 and up
    (A100, H100: bf16 tensor cores), fp16 with loss scaling below (V100 has no bf16 tensor
    cores), fp32 on CPU; anything else as requested."""
    if requested != "auto":
        return requested
    if accel.info is None:
        return "fp32"
    return "bf16" if accel.info.capability[0] >= 8 else "fp16"


def rng_states(accel: Accelerator) -> dict[str, torch.Tensor]:
    """This process's random states: the CPU generator and, on a GPU, the device's (dropout)."""
    out = {"cpu": torch.get_rng_state()}
    state = accel.rng_state()
    if state is not None:
        out["cuda"] = state
    return out


def set_rng_states(states: Any, accel: Accelerator) -> None:
    """Restore :func:`rng_states` (a bare CPU state from older checkpoints is accepted)."""
    if isinstance(states, torch.Tensor):
        torch.set_rng_state(states)
        return
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and accel.gpu:
        accel.set_rng_state(states["cuda"])
