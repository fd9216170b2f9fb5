"""Launcher detection from fake environments."""
import pytest

from jeoparda.dist.env import detect


def test_single_process():
    env = detect({})
    assert (env.rank, env.world_size, env.launcher, env.is_root) == (0, 1, "single", True)


@pytest.mark.parametrize("environ, expected", [
    ({"TORCHELASTIC_RUN_ID": "x", "RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
      "LOCAL_WORLD_SIZE": "4"}, ("torchrun", 3, 8, 1, 4, 2)),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
      "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, ("openmpi", 1, 2, 1, 2, 1)),
    ({"PMI_RANK": "5", "PMI_SIZE": "6", "MPI_LOCALRANKID": "2", "MPI_LOCALNRANKS": "3"},
     ("mpich", 5, 6, 2, 3, 2)),
    ({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_PROCID": "7", "SLURM_NTASKS": "8",
      "SLURM_LOCALID": "3", "SLURM_NTASKS_PER_NODE": "4(x2)", "SLURM_STEP_NUM_NODES": "2"},
     ("slurm", 7, 8, 3, 4, 2)),
])
def test_launchers(environ, expected):
    env = detect(environ)
    assert (env.launcher, env.rank, env.world_size, env.local_rank, env.local_size, env.nodes) == expected


def test_mpirun_inside_a_slurm_job_is_open_mpi():
    env = detect({"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_NTASKS": "1",
                  "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"})
    assert (env.launcher, env.rank, env.world_size, env.job_id) == ("openmpi", 1, 2, "9")


def test_slurm_batch_script_without_srun_is_single():
    env = detect({"SLURM_JOB_ID": "9", "SLURM_PROCID": "0", "SLURM_NTASKS": "8"})
    assert (env.launcher, env.world_size) == ("single", 1)


def test_garbage_is_a_clear_error():
    with pytest.raises(ValueError, match="OMPI_COMM_WORLD_SIZE"):
        detect({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "two"})
