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
