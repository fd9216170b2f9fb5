"""Launcher detection from fake environments."""
import pytest

from jeoparda.cluster.env import detect


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


def test_rendezvous_rules():
    from jeoparda.cluster.env import ClusterEnv, first_slurm_host, rendezvous

    one_node = ClusterEnv(world_size=2, local_size=2, nodes=1, launcher="openmpi")
    r = rendezvous(one_node, environ={})
    assert (r.addr, r.port) == ("127.0.0.1", None)
    multi = ClusterEnv(world_size=8, local_size=4, nodes=2, launcher="slurm", job_id="123456")
    r = rendezvous(multi, environ={"SLURM_JOB_NODELIST": "gpu[07-08]"})
    assert (r.addr, r.port) == ("gpu07", 29500 + 123456 % 10000)
    user = rendezvous(multi, port=4000, environ={"MASTER_ADDR": "head", "MASTER_PORT": "1234"})
    assert (user.addr, user.port) == ("head", 1234)  # the user's settings win, untouched
    assert rendezvous(multi, port=4000, environ={"SLURM_JOB_NODELIST": "n1"}).port == 4000
    mpi = ClusterEnv(world_size=8, local_size=4, nodes=2, launcher="openmpi")
    r = rendezvous(mpi, environ={})
    assert (r.addr, r.port) == (None, None)  # settled over MPI at start-up
    assert first_slurm_host("a[1-3],b") == "a1" and first_slurm_host("node7,node9") == "node7"


def test_single_backend_refuses_many_processes():

    from jeoparda.cluster.backends import Backend
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.config import DistConfig
    from jeoparda.errors import JeopardaError

    with pytest.raises(JeopardaError, match="dist.backend=single"):
        Backend(ClusterEnv(rank=0, world_size=2), DistConfig(backend="single")).init()


SRUN_2x2 = {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_NODES": "2",
            "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURM_JOB_NODELIST": "node[07-08]"}


@pytest.mark.parametrize("rank", range(4))
@pytest.mark.parametrize("plugin", ["none", "pmi2", "cray_shasta", "pmix"])
def test_srun_two_nodes_two_tasks_every_mpi_plugin(rank, plugin):
    """srun puts SLURM_* beside whatever its MPI plugin sets: rank, local rank, node count and the
    rendezvous host must be right for every plugin (pmi2 once gave local rank 0 and one node)."""
    from jeoparda.cluster.env import rendezvous

    environ = {**SRUN_2x2, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank % 2), "SLURM_NODEID": str(rank // 2)}
    if plugin in ("pmi2", "cray_shasta"):
        environ.update(PMI_RANK=str(rank), PMI_SIZE="4")
    if plugin == "pmix":
        environ.update(PMIX_RANK=str(rank), PMIX_NAMESPACE="slurm.pmix.77.0")
    env = detect(environ)
    assert (env.rank, env.world_size, env.local_rank, env.local_size, env.nodes) == (rank, 4, rank % 2, 2, 2)
    point = rendezvous(env, environ=environ)
    if env.launcher == "slurm":
        assert point.addr == "node07" and point.port == 29577
    else:  # a PMI launch: rank 0's host is shared over MPI at start-up, never 127.0.0.1
        assert env.launcher == "mpich" and point.addr is None


def test_mpich_hydra_keeps_its_own_local_variables():
    env = detect({"PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2",
                  "SLURM_LOCALID": "0", "SLURM_STEP_ID": "0"})
    assert (env.launcher, env.local_rank, env.local_size, env.nodes) == ("mpich", 1, 2, 2)


def test_torchrun_two_nodes():
    env = detect({"TORCHELASTIC_RUN_ID": "x", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                  "LOCAL_WORLD_SIZE": "2", "GROUP_WORLD_SIZE": "2"})
    assert (env.rank, env.local_rank, env.local_size, env.nodes) == (3, 1, 2, 2)


def srun_cyclic(rank, plugin="none"):
    """srun -m cyclic on 2 nodes x 2 tasks: ranks 0, 2 on node07 (node 0), ranks 1, 3 on node08 (node 1)."""
    environ = {**SRUN_2x2, "SLURM_DISTRIBUTION": "cyclic", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank // 2),
               "SLURM_NODEID": str(rank % 2)}
    if plugin == "pmi2":
        environ.update(PMI_RANK=str(rank), PMI_SIZE="4")
    if plugin == "pmix":
        environ.update(PMIX_RANK=str(rank), PMIX_NAMESPACE="slurm.pmix.77.0")
    return environ


@pytest.mark.parametrize("plugin", ["none", "pmi2", "pmix"])
def test_srun_cyclic_placement_gives_each_rank_its_node(plugin):
    """The node comes from SLURM_NODEID, not rank // local_size (which puts rank 1 on node 0)."""
    envs = [detect(srun_cyclic(rank, plugin)) for rank in range(4)]
    assert [(e.rank, e.local_rank, e.node) for e in envs] == [(0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1)]
    assert {(e.nodes, e.local_size) for e in envs} == {(2, 2)}


def test_block_placement_is_the_default_where_the_launcher_gives_no_node():
    envs = [detect({"OMPI_COMM_WORLD_RANK": str(r), "OMPI_COMM_WORLD_SIZE": "4",
                    "OMPI_COMM_WORLD_LOCAL_RANK": str(r % 2), "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}) for r in range(4)]
    assert [e.node for e in envs] == [0, 0, 1, 1]
    from jeoparda.cluster.env import ClusterEnv

    assert ClusterEnv(rank=5, world_size=8, local_size=4).node == 1 and ClusterEnv().node == 0
    assert ClusterEnv(rank=5, world_size=8, local_size=4, node=0).node == 0


def test_mpirun_in_a_batch_script_does_not_take_the_batch_hosts_node():
    """mpirun copies the batch script's SLURM_NODEID=0 to every rank: Slurm did not start rank 3."""
    env = detect({"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_NTASKS": "4",
                  "SLURM_NODEID": "0", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4",
                  "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"})
    assert (env.launcher, env.rank, env.node) == ("openmpi", 3, 1)


def test_torchrun_node_is_its_group_rank():
    env = detect({"TORCHELASTIC_RUN_ID": "x", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                  "LOCAL_WORLD_SIZE": "2", "GROUP_WORLD_SIZE": "2", "GROUP_RANK": "1"})
    assert env.node == 1


def test_a_node_index_outside_the_job_is_a_clear_error():
    with pytest.raises(ValueError, match="SLURM_NODEID='2' is not a node index of a 2-node job"):
        detect({**srun_cyclic(1), "SLURM_NODEID": "2"})


def test_slurm_cpus_per_task_with_any_launcher_or_none():
    """The CPUs per task come from Slurm whoever started the rank; what is not a count is no limit."""
    assert detect({"SLURM_CPUS_PER_TASK": "8"}).cpus_per_task == 8
    assert detect({"SLURM_CPUS_PER_TASK": "8", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}
                  ).cpus_per_task == 8
    assert detect({}).cpus_per_task == 0
    assert detect({"SLURM_CPUS_PER_TASK": "junk"}).cpus_per_task == 0
