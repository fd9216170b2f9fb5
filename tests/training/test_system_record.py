"""run_start's system and system_info from a real `jeoparda train`: the name from JEOPARDA_SYSTEM,
an unsafe one refused with one line, and rank 0 deciding for a rank whose environment differs."""
import os
import subprocess
import sys

from tests.cluster.test_multinode import free_port, jeoparda_args, wait_all
from tests.training.test_train import events, train_cmd

FAST = ("train.epochs=1", "train.max_steps=1", "train.test=false", "train.val_every=0")
CONTRACT = {"gpu_model", "gpus_per_node", "gpu_memory_gib", "cpu_model", "cpu_cores", "nodes", "interconnect",
            "filesystem", "container", "name_source"}


def quiet_env(**extra):
    """This process's environment without a launcher's, system's or container's variables."""
    drop = ("SLURM_", "PMI_", "OMPI_", "TORCHELASTIC", "JEOPARDA_SYSTEM", "APPTAINER_", "SINGULARITY_", "PYXIS_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, "OMP_NUM_THREADS": "1", **extra}


def test_a_run_records_the_system_from_the_variable(dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(dataset, out, *FAST, "dist.backend=single"), capture_output=True, text=True,
                          timeout=300, env=quiet_env(JEOPARDA_SYSTEM="alpha"))
    assert proc.returncode == 0, proc.stderr
    start = events(out)[0]
    info = start["system_info"]
    assert start["system"] == "alpha" and set(info) == CONTRACT and info["name_source"] == "JEOPARDA_SYSTEM"
    assert (info["gpu_model"], info["gpus_per_node"], info["nodes"]) == (None, 0, 1)  # the CPU, as device says
    assert start["device"] == "cpu" and info["cpu_model"] == start["device_name"]
    assert info["cpu_cores"]["node"] == os.cpu_count()
    assert info["filesystem"]["path"] == os.path.realpath(dataset)


def test_an_unsafe_name_stops_the_run_with_one_line(dataset, tmp_path):
    proc = subprocess.run(train_cmd(dataset, tmp_path / "run", *FAST, "dist.backend=single"), capture_output=True,
                          text=True, timeout=300, env=quiet_env(JEOPARDA_SYSTEM="lab/box 1"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "JEOPARDA_SYSTEM" in lines[0] and "'/'" in lines[0], proc.stderr


def test_rank_0_decides_for_a_rank_whose_environment_lacks_the_name(dataset, tmp_path):
    """Two ranks shaped as Open MPI's mpirun starts them, JEOPARDA_SYSTEM on rank 0 only (set on the
    launching shell): rank 1 would fall back to its SLURM_CLUSTER_NAME, unsafe here, and stop the job
    were it to decide for itself."""
    port, out = free_port(), tmp_path / "run"
    procs = []
    for rank in range(2):
        env = quiet_env(OMPI_COMM_WORLD_RANK=str(rank), OMPI_COMM_WORLD_SIZE="2",
                        OMPI_COMM_WORLD_LOCAL_RANK=str(rank), OMPI_COMM_WORLD_LOCAL_SIZE="2",
                        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                        **({"JEOPARDA_SYSTEM": "alpha"} if rank == 0 else {"SLURM_CLUSTER_NAME": "not/this"}))
        procs.append(subprocess.Popen([sys.executable, "-m", "jeoparda", "train", *jeoparda_args(dataset, out, *FAST)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    wait_all(procs)
    start = events(out)[0]
    assert (start["system"], start["system_info"]["name_source"], start["world_size"]) == \
        ("alpha", "JEOPARDA_SYSTEM", 2)
