"""Distributed backends behind one small interface (docs/architecture.md, house rule 4): the loop never asks which.

``single`` (one process), ``ddp`` (torch.distributed: NCCL with GPUs, gloo without) and ``horovod``
(when installed). Each offers: init, wrap_model, wrap_optimizer, sync_initial_state, all_reduce,
all_gather, gather_objects, broadcast_object, barrier, shutdown.
"""
from __future__ import annotations

import contextlib
import socket
from datetime import timedelta
from typing import Any

import torch
from torch import nn

from jeoparda.backend_tables import DIST_BACKENDS
from jeoparda.cluster.env import ClusterEnv, Rendezvous, rendezvous
from jeoparda.config import DistConfig
from jeoparda.errors import JeopardaError

HOROVOD_HINT = ("Horovod is not installed; build it with `make horovod` (Horovod 0.28.1 with the C++17 "
                "fix, see docs/training.md) or choose dist.backend=ddp")


class Backend:
    """One process, no communication; also the base the others refine."""

    name = "single"
    #: Whether parameters may be in channels_last layout (non-contiguous): Horovod's collectives
    #: refuse non-contiguous tensors (horovod#3491, #3622).
    supports_channels_last = True
    #: Whether every forward pass starts from rank 0's buffers (DDP's broadcast_buffers), so the
    #: other ranks' own batch-norm statistics never matter once they take another step.
    broadcasts_buffers = True

    def __init__(self, env: ClusterEnv, cfg: DistConfig, collectives: str = "gloo") -> None:
        self.env, self.cfg, self.collectives = env, cfg, collectives
        self.device = torch.device("cpu")  # where the model's tensors live: see bind()

    def bind(self, device: torch.device) -> None:
        """The device the rank's model and tensors live on, once its GPU is chosen (after init)."""
        self.device = device

    def set_timeout(self, seconds: float) -> None:
        """How long a collective may wait from now on (set-up may take longer than a step)."""

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    def init(self) -> None:
        if self.env.world_size > 1:
            raise JeopardaError(f"dist.backend=single but the launcher started {self.env.world_size} "
                                "processes; use dist.backend=ddp or horovod")

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        return optimizer

    def sync_initial_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Make every rank start from rank 0's parameters and optimiser state."""

    def without_gradient_sync(self, model: nn.Module) -> Any:
        """A context in which backward passes do not communicate (to time compute alone), or None
        where the backend offers none."""
        return contextlib.nullcontext()

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        """Apply the (already reduced) gradients; the scaler is a no-op unless fp16 is on."""
        scaler.step(optimizer)
        scaler.update()

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-sized tensors of all ranks along dimension 0, in rank order."""
        return tensor

    @torch.no_grad()
    def average_buffers(self, model: nn.Module) -> None:
        """Average floating-point buffers (batch-norm running statistics) over the ranks.

        Gradients keep parameters identical, but every rank updates its running statistics from
        its own batches; evaluation and checkpoints must see one model.
        """
        for buffer in model.buffers():
            if buffer.is_floating_point():
                self.all_reduce(buffer, "sum").div_(self.world_size)

    def gather_objects(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_object(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class DDPBackend(Backend):
    name = "ddp"
    objects: Any = None  # the process group objects travel over (None: the default one)

    def init(self) -> None:
        import torch.distributed as dist

        kind = self.collectives
        if self.env.launcher == "torchrun":  # its agent already serves the store: join it
            method = "env://"
        else:
            point = self._settle(rendezvous(self.env, self.cfg.port))
            method = f"tcp://{point.addr}:{point.port}"
        dist.init_process_group(kind, init_method=method, rank=self.env.rank, world_size=self.env.world_size,
                                timeout=timedelta(seconds=self.cfg.setup_timeout_s))
        # Objects (GPU choice, run folder, random states) travel over gloo on the host: no GPU needed
        self.objects = (dist.new_group(backend="gloo", timeout=timedelta(seconds=self.cfg.setup_timeout_s))
                        if kind != "gloo" else None)

    def set_timeout(self, seconds: float) -> None:
        from torch.distributed import distributed_c10d as c10d

        for group in (None, self.objects) if self.objects is not None else (None,):
            c10d._set_pg_timeout(timedelta(seconds=seconds), group)

    def _settle(self, point: Rendezvous) -> Rendezvous:
        """Fill in what the launcher did not give: rank 0's host and a free port, over MPI."""
        if point.addr is not None and point.port is not None:
            return point
        try:
            from mpi4py import MPI
        except ImportError:
            raise JeopardaError("cannot find a rendezvous address: set MASTER_ADDR and MASTER_PORT, or "
                                "install mpi4py (pip install 'jeoparda[mpi]')") from None
        mine = None
        if self.env.rank == 0:
            with socket.socket() as s:
                s.bind(("", 0))
                free = s.getsockname()[1]
            mine = (point.addr or socket.gethostname(), point.port or free)
        addr, port = MPI.COMM_WORLD.bcast(mine, root=0)
        return Rendezvous(addr, port)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.index is not None else None  # a GPU: its index; the CPU: none
        # gradients live in the communication buckets: no copy in and out of them each step
        return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)

    def without_gradient_sync(self, model: nn.Module) -> Any:
        return model.no_sync()  # type: ignore[operator]  # DDP's method, reached through nn.Module

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def gather_objects(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.objects)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.objects)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        # over the host channel: an NCCL barrier as the first NCCL call guesses its GPU from the rank
        dist.barrier(group=self.objects)

    def shutdown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class HorovodBackend(Backend):
    name = "horovod"
    supports_channels_last = False
    broadcasts_buffers = False  # each rank keeps its own running statistics between averages

    def init(self) -> None:
        try:
            import horovod.torch as hvd
        except ImportError:
            raise JeopardaError(HOROVOD_HINT) from None
        self.hvd = hvd
        hvd.init()
        if self.collectives == "nccl" and not hvd.nccl_built():
            raise JeopardaError("Horovod was built without NCCL: GPU gradients would be reduced through host "
                                "memory. Rebuild it with HOROVOD_GPU_OPERATIONS=NCCL (scripts/install_horovod.sh "
                                "does on a machine with CUDA)")
        if hvd.size() != self.env.world_size:
            raise JeopardaError(f"Horovod sees {hvd.size()} processes, the launcher {self.env.world_size}")

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        return self.hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())

    def without_gradient_sync(self, model: nn.Module) -> Any:
        return None  # Horovod reduces in its optimiser hooks; no switch to time compute alone

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        if not scaler.is_enabled():
            optimizer.step()
            return
        hvd_opt: Any = optimizer  # Horovod's DistributedOptimizer adds these two methods
        hvd_opt.synchronize()  # reduce before unscaling, then step without reducing again
        scaler.unscale_(optimizer)
        with hvd_opt.skip_synchronize():
            scaler.step(optimizer)
        scaler.update()

    def sync_initial_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        return self.hvd.allreduce_(tensor, op=self.hvd.Sum if op == "sum" else self.hvd.Max)  # in place

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.hvd.allgather(tensor)

    def gather_objects(self, obj: Any) -> list[Any]:
        return self.hvd.allgather_object(obj)

    def broadcast_object(self, obj: Any) -> Any:
        return self.hvd.broadcast_object(obj, root_rank=0)

    def barrier(self) -> None:
        self.hvd.barrier()

    def shutdown(self) -> None:
        self.hvd.shutdown()


def create_backend(env: ClusterEnv, cfg: DistConfig, collectives: str = "gloo") -> Backend:
    """The backend ``cfg.backend``, initialised; ``collectives`` is the torch.distributed backend for
    the tensors of this process (jeoparda.devices.collectives()). The names live in
    jeoparda.backend_tables.DIST_BACKENDS."""
    backend = DIST_BACKENDS[cfg.backend].load()(env, cfg, collectives)
    backend.init()
    return backend
