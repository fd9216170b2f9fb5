"""Two "nodes" x 2 ranks on this machine against 4 ranks on one node: torchrun with two agents on
loopback, and srun-shaped environments (none and pmi2 plugins). Rank, local rank and node count
must be what a real two-node job has, node-local staging must copy each node's shards once, and
the trained weights must equal the single-node run's."""
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tests.training.test_train import events, train_cmd

pytestmark = pytest.mark.mpi
SETS = ("train.epochs=1", "dist.backend=ddp", "train.test=false", "train.threads=1", "dist.timeout_s=120")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun() -> str:
    found = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if found is None:
        pytest.skip("torchrun not found")
    return found


def jeoparda_args(dataset, out, *extra):
    return train_cmd(dataset, out, *SETS, *extra)[4:]  # after `python -m jeoparda train`


def wait_all(procs, timeout=600):
    outputs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]


@pytest.fixture(scope="module")
def single_node(dataset, tmp_path_factory):
    """The reference: 4 ranks on one node (torchrun --standalone)."""
    out = tmp_path_factory.mktemp("one-node") / "run"
    proc = subprocess.run([torchrun(), "--standalone", "--nproc-per-node", "4", "-m", "jeoparda", "train",
                           *jeoparda_args(dataset, out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return events(out)


def placement(log):
    return sorted((r["rank"], r["local_rank"], r["local_size"], r["nodes"]) for r in log[0]["ranks"])


TWO_BY_TWO = [(0, 0, 2, 2), (1, 1, 2, 2), (2, 0, 2, 2), (3, 1, 2, 2)]


def test_torchrun_two_agents_equal_one_node(dataset, single_node, tmp_path):
    port = free_port()
    out = tmp_path / "run"
    agents = [subprocess.Popen([torchrun(), "--nnodes", "2", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
                                "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "jeoparda-test", "-m", "jeoparda",
                                "train", *jeoparda_args(dataset, out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}) for _ in range(2)]
    wait_all(agents)
    log = events(out)
    assert placement(log) == TWO_BY_TWO and {r["launcher"] for r in log[0]["ranks"]} == {"torchrun"}
    assert log[-1]["replica_sha256"] == single_node[-1]["replica_sha256"]  # the same training, bit for bit


def test_torchrun_two_agents_stage_once_per_node(dataset, tmp_path):
    port = free_port()
    out = tmp_path / "run"
    node_tmp = [tmp_path / "node0-tmp", tmp_path / "node1-tmp"]
    agents = []
    for tmp in node_tmp:  # each "node" has its own local disk
        tmp.mkdir()
        agents.append(subprocess.Popen(
            [torchrun(), "--nnodes", "2", "--nproc-per-node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
             f"127.0.0.1:{port}", "--rdzv-id", "jeoparda-stage", "-m", "jeoparda", "train",
             *jeoparda_args(dataset, out, "data.stage=true", "train.val_every=0")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}))
    wait_all(agents)
    staged = [sorted(p.name for p in tmp.glob("jeoparda-*/train/*.h5")) for tmp in node_tmp]
    import json

    shards = [s["file"].split("/")[-1] for s in
              json.loads((dataset / "manifest.json").read_text())["splits"]["train"]["shards"]]
    assert staged[0] and staged[1] and not set(staged[0]) & set(staged[1])  # each node its own shards
    assert sorted(staged[0] + staged[1]) == sorted(shards)                    # together: all, once
    assert events(out)[-1]["status"] == "completed"


@pytest.mark.parametrize("plugin", ["none", "pmi2", "mpirun"])
def test_launcher_shaped_two_nodes_equal_one_node(dataset, single_node, tmp_path, plugin):
    """Four processes with the environment srun (no MPI plugin, or pmi2) or Open MPI's mpirun gives
    on two nodes of two tasks each. For the MPI rows the rendezvous comes from MASTER_ADDR and
    MASTER_PORT here (on a cluster, rank 0's host is shared over MPI)."""
    port = free_port()
    out = tmp_path / "run"
    procs = []
    for rank in range(4):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PMI_", "OMPI_", "TORCHELASTIC"))}
        env.update(SLURM_JOB_ID="5151", SLURM_STEP_ID="0", SLURM_PROCID=str(rank), SLURM_NTASKS="4",
                   SLURM_LOCALID=str(rank % 2), SLURM_NODEID=str(rank // 2), SLURM_STEP_NUM_NODES="2",
                   SLURM_STEP_TASKS_PER_NODE="2(x2)", SLURM_JOB_NODELIST="localhost,ip6-localhost",
                   OMP_NUM_THREADS="1")
        if plugin == "pmi2":
            env.update(PMI_RANK=str(rank), PMI_SIZE="4", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        if plugin == "mpirun":  # mpirun inside the allocation: Open MPI's own variables win
            env.update(OMPI_COMM_WORLD_RANK=str(rank), OMPI_COMM_WORLD_SIZE="4",
                       OMPI_COMM_WORLD_LOCAL_RANK=str(rank % 2), OMPI_COMM_WORLD_LOCAL_SIZE="2",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-m", "jeoparda", "train",
                                       *jeoparda_args(dataset, out, f"dist.port={port}")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    wait_all(procs)
    log = events(out)
    assert placement(log) == TWO_BY_TWO
    assert {r["launcher"] for r in log[0]["ranks"]} == {{"none": "slurm", "pmi2": "mpich", "mpirun": "openmpi"}[plugin]}
    assert log[-1]["replica_sha256"] == single_node[-1]["replica_sha256"]
