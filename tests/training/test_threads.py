"""CPU threads per rank when train.threads is 0: the usable cores shared by the node's ranks,
never more than Slurm's CPUs per task."""
import os

from jeoparda.cluster.env import ClusterEnv, detect
from jeoparda.training.setup import auto_threads


def test_auto_threads_share_the_cores_and_respect_slurm():
    cores = len(os.sched_getaffinity(0))
    assert auto_threads(detect({})) == cores
    assert auto_threads(ClusterEnv(world_size=cores * 4, local_size=cores * 4)) == 1
    assert auto_threads(detect({"SLURM_CPUS_PER_TASK": "1"})) == 1
    assert auto_threads(detect({"SLURM_CPUS_PER_TASK": str(cores + 8)})) == cores
    assert auto_threads(detect({"SLURM_CPUS_PER_TASK": "junk"})) == cores
