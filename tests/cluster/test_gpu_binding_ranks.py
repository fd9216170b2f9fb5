"""GPU binding across real rank processes on the stand-in GPUs (tests/standin_site): torchrun on one
node, srun-shaped ranks under --gpu-bind=closest, and two ranks handed one GPU, which must end the
job at start-up with one line and no hang."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.test_multinode import free_port, jeoparda_args, torchrun, wait_all
from tests.training.test_train import events

pytestmark = pytest.mark.mpi
SITE = str(Path(__file__).resolve().parent.parent / "standin_site")
ONE_STEP = ("train.max_steps=1", "train.val_every=0")


def standin_env(boards: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "PMI_", "OMPI_", "TORCHELASTIC", "CUDA_VISIBLE"))}
    env.update(JEOPARDA_STANDIN_GPUS=str(boards), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([SITE, *filter(None, [os.environ.get("PYTHONPATH")])]), **extra)
    return env


def gpus(log):
    return {r["rank"]: r["gpu"] for r in log[0]["ranks"]}


def board(n: int) -> str:
    from tests.standin_cuda import StandInCuda

    return StandInCuda().uuid_of(n)


def test_torchrun_ranks_take_a_gpu_each(dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "jeoparda", "train",
                           *jeoparda_args(dataset, out, *ONE_STEP)], capture_output=True, text=True, timeout=600,
                          env=standin_env(2))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = events(out)
    assert log[0]["device"] == "cuda" and log[0]["gpus_per_node"] == 2
    assert gpus(log) == {0: board(0), 1: board(1)}
    assert log[1]["energy_sources"] == ["gpu"] and log[-1]["status"] == "completed"


def test_srun_closest_binding_gives_socket_sharing_ranks_their_own_gpu(dataset, tmp_path):
    """4 tasks on a 2-socket node of 4 GPUs, placed cyclically over sockets, --gpu-bind=closest:
    ranks 0 and 2 see GPUs 0,1, ranks 1 and 3 see GPUs 2,3 (local_rank % 2 put 0 and 2 on one GPU)."""
    port = free_port()
    out = tmp_path / "run"
    procs = []
    for rank in range(4):
        env = standin_env(4, SLURM_JOB_ID="6161", SLURM_STEP_ID="0", SLURM_PROCID=str(rank), SLURM_NTASKS="4",
                          SLURM_LOCALID=str(rank), SLURM_NODEID="0", SLURM_STEP_NUM_NODES="1",
                          SLURM_STEP_TASKS_PER_NODE="4", SLURM_JOB_NODELIST="localhost",
                          CUDA_VISIBLE_DEVICES="0,1" if rank % 2 == 0 else "2,3")
        procs.append(subprocess.Popen([sys.executable, "-m", "jeoparda", "train",
                                       *jeoparda_args(dataset, out, f"dist.port={port}", *ONE_STEP)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    wait_all(procs)
    assert gpus(events(out)) == {0: board(0), 1: board(2), 2: board(1), 3: board(3)}


def test_two_ranks_on_one_gpu_end_the_job_with_one_line(dataset, tmp_path):
    start = time.monotonic()
    proc = subprocess.run([torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "jeoparda", "train",
                           *jeoparda_args(dataset, tmp_path / "run", *ONE_STEP)], capture_output=True, text=True,
                          timeout=300, env=standin_env(2, CUDA_VISIBLE_DEVICES="1"))
    assert proc.returncode != 0 and time.monotonic() - start < 120
    lines = [x for x in proc.stderr.splitlines() if x.startswith("jeoparda: error:")]
    # every rank says it (torchrun may stop the second before it prints)
    assert lines and all("ranks 0 and 1 on " in x and f"both got GPU {board(1)}" in x for x in lines)
    assert "/jeoparda/" not in proc.stderr  # no traceback from jeoparda (torchrun prints its own summary)
