"""Who reads what: exactly-once coverage, equal steps, determinism, per-epoch order."""
import numpy as np
import pytest

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError
from jeoparda.loaders.partition import eval_plan, placement, shuffled, train_plan

SIZES = [40, 40, 17, 23]  # 120 patches in 4 shards of uneven size


def envs(world, local=None):
    local = local or world
    return [ClusterEnv(rank=r, world_size=world, local_rank=r % local, local_size=local,
                       nodes=world // local) for r in range(world)]


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("batch", [4, 7])
def test_train_disjoint_equal_steps(world, batch):
    plans = [train_plan(SIZES, placement(4, e, False), batch, seed=1, epoch=0, block=8) for e in envs(world)]
    assert len({p.steps for p in plans}) == 1
    steps = plans[0].steps
    assert steps == 120 // (world * batch)
    seen = np.concatenate([p.indices for p in plans])
    assert len(seen) == len(set(seen.tolist())) == steps * batch * world  # at most once
    assert all(p.mask.all() for p in plans)


@pytest.mark.parametrize("world, batch", [(1, 8), (2, 6), (3, 5)])
def test_train_covers_all_when_it_divides(world, batch):
    assert 120 % (world * batch) == 0
    plans = [train_plan(SIZES, placement(4, e, False), batch, 1, 0, 8) for e in envs(world)]
    assert sorted(np.concatenate([p.indices for p in plans]).tolist()) == list(range(120))


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("batch", [4, 7, 50])
def test_eval_exactly_once_with_equal_steps(world, batch):
    plans = [eval_plan(SIZES, placement(4, e, False), batch) for e in envs(world)]
    assert len({p.steps for p in plans}) == 1
    assert all(len(p.indices) == p.steps * batch for p in plans)
    real = np.concatenate([p.indices[p.mask] for p in plans])
    assert sorted(real.tolist()) == list(range(120))
    counts = [int(p.mask.sum()) for p in plans]
    assert max(counts) - min(counts) <= 1


def test_shuffle_deterministic_new_each_epoch_and_global():
    a = train_plan(SIZES, placement(4, ClusterEnv(), False), 8, seed=3, epoch=0, block=4)
    b = train_plan(SIZES, placement(4, ClusterEnv(), False), 8, seed=3, epoch=0, block=4)
    c = train_plan(SIZES, placement(4, ClusterEnv(), False), 8, seed=3, epoch=1, block=4)
    d = train_plan(SIZES, placement(4, ClusterEnv(), False), 8, seed=4, epoch=0, block=4)
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices) and not np.array_equal(a.indices, d.indices)
    # global: the first batch draws from several shards, not only the first one
    assert len(set(np.searchsorted(np.cumsum(SIZES), a.indices[:8], side="right"))) > 1


def test_blocks_stay_together():
    order = shuffled(SIZES, (0, 1, 2, 3), seed=0, epoch=0, block=8)
    assert sorted(order.tolist()) == list(range(120))
    for i in range(0, 80, 8):  # the first 80 come from full blocks of 8 or the ragged ends
        chunk = order[i:i + 8]
        if chunk.max() - chunk.min() == 7:
            assert sorted(chunk.tolist()) == list(range(chunk.min(), chunk.min() + 8))


def test_node_local_groups():
    sizes = [10] * 6
    es = envs(4, local=2)  # 2 nodes x 2 ranks
    places = [placement(6, e, True) for e in es]
    assert places[0].groups == ((0, 2, 4), (1, 3, 5))
    plans = [train_plan(sizes, p, 5, 0, 0, 4) for p in places]
    assert len({p.steps for p in plans}) == 1
    node0 = set(np.concatenate([plans[0].indices, plans[1].indices]).tolist())
    assert node0 <= set(range(0, 10)) | set(range(20, 30)) | set(range(40, 50))
    evals = [eval_plan(sizes, p, 4) for p in places]
    assert sorted(np.concatenate([p.indices[p.mask] for p in evals]).tolist()) == list(range(60))
    with pytest.raises(JeopardaError, match="same number of ranks"):
        placement(6, ClusterEnv(rank=0, world_size=3, local_size=2), True)


def test_too_small_split_is_a_clear_error():
    with pytest.raises(JeopardaError, match="too few patches"):
        train_plan([5], placement(1, ClusterEnv(), False), 8, 0, 0, 4)


def test_cyclic_srun_placement_reads_each_nodes_own_shards_once():
    """srun -m cyclic: ranks 0, 2 on node 0 and 1, 3 on node 1. Each node's ranks read only the shards
    dealt to their node (the ones its local rank 0 stages), and every shard is read by one node."""
    from jeoparda.cluster.env import detect
    from tests.cluster.test_env import srun_cyclic

    sizes = [10] * 6
    es = [detect(srun_cyclic(r)) for r in range(4)]
    places = [placement(6, e, True) for e in es]
    assert [p.group for p in places] == [0, 1, 0, 1] and [p.position for p in places] == [0, 0, 1, 1]
    groups = places[0].groups
    assert sorted(s for g in groups for s in g) == list(range(6))  # each shard on exactly one node
    shard_of = np.repeat(np.arange(6), 10)
    for plan_of in (lambda p: train_plan(sizes, p, 5, 0, 0, 4), lambda p: eval_plan(sizes, p, 4)):
        plans = [plan_of(p) for p in places]
        for e, plan in zip(es, plans):
            assert set(shard_of[plan.indices].tolist()) <= set(groups[e.node])  # its own node's shards
        for node in (0, 1):  # the node's two ranks share its patches without overlap
            a, b = (plans[r] for r in range(4) if es[r].node == node)
            assert not set(a.indices[a.mask].tolist()) & set(b.indices[b.mask].tolist())
    evals = [eval_plan(sizes, p, 4) for p in places]
    assert sorted(np.concatenate([p.indices[p.mask] for p in evals]).tolist()) == list(range(60))


def test_node_indices_from_host_names():
    from jeoparda.loaders.partition import node_indices, with_gathered_node

    assert node_indices(["n8", "n7", "n8", "n7"]) == [1, 0, 1, 0]
    hosts = ["n8", "n7", "n8", "n7"]  # mpirun --map-by node: rank 0 on n8, no node index given
    es = [ClusterEnv(rank=r, world_size=4, local_rank=r // 2, local_size=2, nodes=2, hostname=hosts[r])
          for r in range(4)]
    assert [e.node for e in es] == [0, 0, 1, 1]  # rank // local_size: wrong here
    assert [with_gathered_node(e, lambda _: hosts).node for e in es] == [1, 0, 1, 0]
    same = ["localhost"] * 4  # nodes simulated on one machine: names say nothing, env kept
    assert [with_gathered_node(e, lambda _: same).node for e in es] == [0, 0, 1, 1]


def test_a_node_outside_the_job_is_a_clear_error():
    with pytest.raises(JeopardaError, match="rank 1: node index 2 is outside the job's 2 node"):
        placement(6, ClusterEnv(rank=1, world_size=4, local_rank=0, local_size=2, node=2), True)
