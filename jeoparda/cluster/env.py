"""Launcher detection: the one place that reads launcher environment variables (docs/architecture.md, house rule 3).

Each launcher is a row of :data:`LAUNCHERS`: the variable that proves it is present and the
variables holding rank, world size, local rank, local size and node index. Rows are tried in order: torchrun
first (it may run inside an allocation), then Open MPI and MPICH/PMI (``mpirun`` inside a Slurm job
also carries SLURM_* variables), then Slurm's ``srun``.

The variables that describe the system rather than the launch (its name, the container, NCCL's
network settings) come from :data:`SYSTEM_VARS`, :data:`CONTAINER_VARS` and :data:`NCCL_VARS`;
``jeoparda.cluster.system`` turns them into the run's system name and description.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Keys = tuple[str, ...]
#: Where a Slurm step says how many of its tasks share this node, and how many nodes it spans:
#: srun sets these whatever MPI plugin it starts the tasks with.
_SLURM_LOCAL_SIZE: Keys = ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE")
_SLURM_NODES: Keys = ("SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES")
#: This node's index in the step. Believed only when Slurm started this very rank (its SLURM_PROCID
#: and SLURM_NTASKS are the rank and world size found): mpirun copies the batch script's values
#: (node 0) to ranks on every node.
_SLURM_NODE: Keys = ("SLURM_NODEID",)
_SLURM_TASK: tuple[str, str] = ("SLURM_PROCID", "SLURM_NTASKS")
_SLURM_CPUS = "SLURM_CPUS_PER_TASK"
#: ClusterEnv field -> the variable naming it (docs/training.md, "Configuration": system.name).
SYSTEM_VARS: dict[str, str] = {"system_var": "JEOPARDA_SYSTEM", "cluster_name": "SLURM_CLUSTER_NAME"}
#: What container runtimes set inside the container: Apptainer and Singularity (the image file and
#: its name), pyxis (the image asked for with srun --container-image, when given as a variable).
#: Docker, Podman and enroot set none: their marks are files (cluster/system.py).
CONTAINER_VARS: Keys = ("APPTAINER_CONTAINER", "APPTAINER_NAME", "SINGULARITY_CONTAINER", "SINGULARITY_NAME",
                        "PYXIS_CONTAINER_IMAGE")
#: NCCL's settings that choose or restrict the network between nodes.
NCCL_VARS: Keys = ("NCCL_NET", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE")


@dataclass(frozen=True)
class Launcher:
    """One launcher: the variable that proves it, and for each quantity the variables that may hold
    it, first found wins (a PMI launch by ``srun --mpi=pmi2`` sets no MPI_LOCALRANKID: Slurm's
    own variables then say where the rank sits)."""

    name: str
    marker: str
    rank: Keys
    world_size: Keys
    local_rank: Keys
    local_size: Keys
    node_count: Keys = ()
    node: Keys = ()  # this rank's node index; without one, ranks are assumed placed in node blocks


LAUNCHERS: tuple[Launcher, ...] = (
    Launcher("torchrun", "TORCHELASTIC_RUN_ID", ("RANK",), ("WORLD_SIZE",), ("LOCAL_RANK",), ("LOCAL_WORLD_SIZE",),
             ("GROUP_WORLD_SIZE",), ("GROUP_RANK",)),
    Launcher("openmpi", "OMPI_COMM_WORLD_RANK", ("OMPI_COMM_WORLD_RANK",), ("OMPI_COMM_WORLD_SIZE",),
             ("OMPI_COMM_WORLD_LOCAL_RANK",), ("OMPI_COMM_WORLD_LOCAL_SIZE",), (), _SLURM_NODE),
    Launcher("mpich", "PMI_RANK", ("PMI_RANK",), ("PMI_SIZE",),
             ("MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID"),
             ("MPI_LOCALNRANKS", "PMI_LOCAL_SIZE", *_SLURM_LOCAL_SIZE), _SLURM_NODES, _SLURM_NODE),
    Launcher("slurm", "SLURM_STEP_ID", ("SLURM_PROCID",), ("SLURM_NTASKS",), ("SLURM_LOCALID",),
             _SLURM_LOCAL_SIZE, _SLURM_NODES, _SLURM_NODE),
)


@dataclass(frozen=True)
class ClusterEnv:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_size: int = 1
    nodes: int = 1
    launcher: str = "single"
    hostname: str = ""
    job_id: str | None = None
    node: int = -1  # this rank's node index, 0 .. nodes-1; -1: rank // local_size (block placement)
    cpus_per_task: int = 0  # the CPUs Slurm gives each task (--cpus-per-task); 0: not set
    system_var: str = ""  # JEOPARDA_SYSTEM: the system's name, where the user gives it so
    cluster_name: str = ""  # SLURM_CLUSTER_NAME
    container: tuple[tuple[str, str], ...] = ()  # the CONTAINER_VARS set, (name, value) in table order
    nccl: tuple[tuple[str, str], ...] = ()  # the NCCL_VARS set, (name, value) in table order

    def __post_init__(self) -> None:
        if self.node < 0:
            object.__setattr__(self, "node", self.rank // max(self.local_size, 1))

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0


def _int(env: Mapping[str, str], keys: Keys, default: int) -> int:
    key = next((k for k in keys if k in env), None)
    if key is None:
        return default
    text = env[key].split("(")[0].split(",")[0]  # Slurm writes e.g. "2(x3)" or "2,1"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {key}={env[key]!r} is not an integer") from None


def _node(env: Mapping[str, str], row: Launcher, rank: int, world: int, nodes: int) -> int:
    """This rank's node index from the launcher, or -1 (block placement) where it gives none."""
    key = next((k for k in row.node if k in env), None)
    if key is None:
        return -1
    if key in _SLURM_NODE and tuple(_int(env, (k,), -1) for k in _SLURM_TASK) != (rank, world):
        return -1  # Slurm did not start this rank (mpirun in a batch script): its SLURM_NODEID is not ours
    node = _int(env, (key,), -1)
    if not 0 <= node < nodes:
        raise ValueError(f"environment variable {key}={env[key]!r} is not a node index of a "
                         f"{nodes}-node job")
    return node


def _system(env: Mapping[str, str]) -> dict[str, Any]:
    """The ClusterEnv fields of the system's variables (SYSTEM_VARS, CONTAINER_VARS, NCCL_VARS)."""
    out: dict[str, Any] = {field: env.get(var, "").strip() for field, var in SYSTEM_VARS.items()}
    out["container"] = tuple((k, env[k]) for k in CONTAINER_VARS if env.get(k))
    out["nccl"] = tuple((k, env[k]) for k in NCCL_VARS if env.get(k))
    return out


def detect(environ: Mapping[str, str] | None = None) -> ClusterEnv:
    """Detect the launcher from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    hostname = socket.gethostname()
    job_id = env.get("SLURM_JOB_ID")
    per_task = env.get(_SLURM_CPUS, "")
    cpus = int(per_task) if per_task.isdigit() else 0  # anything else: not a count, not a limit
    system = _system(env)
    for row in LAUNCHERS:
        if row.marker not in env:
            continue
        world = _int(env, row.world_size, 1)
        local_size = _int(env, row.local_size, 1 if world == 1 else world)
        nodes = _int(env, row.node_count, max(1, -(-world // max(local_size, 1))))
        rank = _int(env, row.rank, 0)
        return ClusterEnv(rank=rank, world_size=world, local_rank=_int(env, row.local_rank, 0),
                          local_size=local_size, nodes=nodes, launcher=row.name, hostname=hostname,
                          job_id=job_id, node=_node(env, row, rank, world, nodes), cpus_per_task=cpus,
                          **system)
    return ClusterEnv(hostname=hostname, job_id=job_id, cpus_per_task=cpus, **system)


def first_slurm_host(nodelist: str) -> str:
    """First host of a Slurm node list: ``gpu[03-05,9],login1`` -> ``gpu03``."""
    head = nodelist.split(",")[0] if "[" not in nodelist.split(",")[0] else nodelist[:nodelist.index("]") + 1]
    if "[" not in head:
        return head.strip()
    prefix, ranges = head.split("[", 1)
    first = ranges.rstrip("]").split(",")[0].split("-")[0]
    return f"{prefix}{first}"


@dataclass(frozen=True)
class Rendezvous:
    """Where rank 0 listens for the others; None fields are settled over MPI at start-up."""

    addr: str | None
    port: int | None


def rendezvous(env: ClusterEnv, port: int = 0, environ: Mapping[str, str] | None = None) -> Rendezvous:
    """The rendezvous address and port, from what the launcher and the user provide.

    MASTER_ADDR / MASTER_PORT, when set (by torchrun or the user), are used as they are and never
    overwritten. Otherwise: one node -> 127.0.0.1; srun -> the first host of the job's node list;
    mpirun -> rank 0's host name, shared over MPI (addr None). The port is ``port`` if given,
    else derived from the Slurm job id (29500 + id mod 10000), else chosen by rank 0 (None).
    """
    env_vars = os.environ if environ is None else environ
    addr = env_vars.get("MASTER_ADDR")
    if addr is None and env.nodes == 1:
        addr = "127.0.0.1"
    if addr is None and env.launcher == "slurm" and env_vars.get("SLURM_JOB_NODELIST"):
        addr = first_slurm_host(env_vars["SLURM_JOB_NODELIST"])
    chosen: int | None = port or None
    if "MASTER_PORT" in env_vars:
        chosen = int(env_vars["MASTER_PORT"])
    elif chosen is None and env.job_id and env.job_id.isdigit():
        chosen = 29500 + int(env.job_id) % 10000
    return Rendezvous(addr, chosen)
