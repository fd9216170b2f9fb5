"""Which patches each rank reads in an epoch, and in what order.

Rules (all ranks compute the same plan from the same inputs, without communicating):
- train: a shuffle seeded by (seed, epoch) over the split. To keep reads shard-local, the split is
  cut into blocks of ``block`` consecutive patches of one shard; the blocks are permuted, and the
  patches inside each block too. The shuffled sequence is cut into equal contiguous shares, one
  per rank. Every rank gets ``steps`` full batches; the remainder (fewer than world x batch
  patches, different ones each epoch) is dropped.
- eval (val/test): the split in its stored order, cut into contiguous shares that differ by at
  most one patch; every rank runs the same number of steps, the last batches padded with repeats
  that ``mask`` marks False, so that metrics see each patch exactly once.
- node-local (staging): shards are dealt to nodes round-robin once for the whole run, and each
  node's ranks shuffle and share only their node's shards; steps are the minimum over nodes. A
  rank's node is ``env.node`` (from the launcher, see jeoparda.cluster.env), never rank //
  local_size: ``srun -m cyclic`` or ``mpirun --map-by node`` put ranks 0 and 1 on different nodes.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError


@dataclass(frozen=True)
class Placement:
    """How shards and ranks are grouped: one group, or one group per node when staging."""

    groups: tuple[tuple[int, ...], ...]  # shard ids read by each group
    group: int                           # this rank's group
    members: int                         # ranks per group
    position: int                        # this rank's index in its group


@dataclass(frozen=True)
class EpochPlan:
    indices: np.ndarray  # (steps * batch,) split-global patch indices, in reading order
    mask: np.ndarray     # (steps * batch,) False for padding (eval only)
    steps: int
    batch: int

    def step_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and mask of one step's batch, in ascending index order: order inside a batch
        means nothing to training, and sorted indices become sequential shard reads."""
        sl = slice(step * self.batch, (step + 1) * self.batch)
        order = np.argsort(self.indices[sl], kind="stable")
        return self.indices[sl][order], self.mask[sl][order]


def placement(n_shards: int, env: ClusterEnv, node_local: bool) -> Placement:
    """One group of all ranks, or (``node_local``) one group per node: ``env.node``'s ranks, ordered
    by local rank, share the shards dealt to that node."""
    if not node_local:
        return Placement((tuple(range(n_shards)),), 0, env.world_size, env.rank)
    if env.world_size % env.local_size:
        raise JeopardaError(f"node-local staging needs the same number of ranks on every node "
                            f"(world size {env.world_size}, {env.local_size} on this node)")
    nodes = env.world_size // env.local_size
    if not 0 <= env.node < nodes:
        raise JeopardaError(f"rank {env.rank}: node index {env.node} is outside the job's {nodes} node(s) "
                            f"({env.world_size} ranks, {env.local_size} per node)")
    if n_shards < nodes:
        raise JeopardaError(f"node-local staging needs at least one shard per node "
                            f"({n_shards} shards for {nodes} nodes); use smaller shards")
    groups = tuple(tuple(range(g, n_shards, nodes)) for g in range(nodes))
    return Placement(groups, env.node, env.local_size, env.local_rank)


def node_indices(hosts: Sequence[str]) -> list[int]:
    """Each rank's node index from every rank's host name (sorted unique names -> 0, 1, ...): for
    launchers that give no node index (mpirun, mpiexec) whatever their rank placement."""
    index = {host: i for i, host in enumerate(sorted(set(hosts)))}
    return [index[h] for h in hosts]


def with_gathered_node(env: ClusterEnv, gather: Callable[[Any], list[Any]]) -> ClusterEnv:
    """``env`` with ``node`` from all ranks' host names (``gather``: a backend's gather_objects; every
    rank must call this). Unchanged unless every host name holds ``local_size`` ranks: names that do
    not tell nodes apart (processes simulating nodes on one machine share theirs) change nothing."""
    hosts = [str(h) for h in gather(env.hostname)]
    if len(hosts) != env.world_size or set(Counter(hosts).values()) != {env.local_size}:
        return env
    return replace(env, node=node_indices(hosts)[env.rank])


def offsets(sizes: list[int]) -> np.ndarray:
    """Split-global index of each shard's first patch, plus the total at the end."""
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])


def _members(sizes: list[int], shard_ids: tuple[int, ...]) -> np.ndarray:
    off = offsets(sizes)
    return np.concatenate([np.arange(off[s], off[s + 1]) for s in shard_ids] or [np.zeros(0, np.int64)])


def shuffled(sizes: list[int], shard_ids: tuple[int, ...], seed: int, epoch: int, block: int,
             stream: int = 0) -> np.ndarray:
    """Block-wise shuffle of the patches of ``shard_ids`` for one epoch."""
    rng = np.random.default_rng([seed, epoch, stream])
    off = offsets(sizes)
    blocks = [(off[s] + i, min(block, sizes[s] - i)) for s in shard_ids for i in range(0, sizes[s], block)]
    if not blocks:
        return np.zeros(0, np.int64)
    return np.concatenate([blocks[b][0] + rng.permutation(blocks[b][1])
                           for b in rng.permutation(len(blocks))]).astype(np.int64)


def train_plan(sizes: list[int], place: Placement, batch: int, seed: int, epoch: int,
               block: int) -> EpochPlan:
    counts = [sum(sizes[s] for s in g) for g in place.groups]
    steps = min(c // (place.members * batch) for c in counts)
    if steps == 0:
        raise JeopardaError(f"the split has too few patches ({min(counts)} per group) for one step "
                            f"of {place.members} rank(s) x batch {batch}")
    order = shuffled(sizes, place.groups[place.group], seed, epoch, block, stream=place.group)
    per = steps * batch
    mine = order[place.position * per:(place.position + 1) * per]
    return EpochPlan(mine, np.ones(per, bool), steps, batch)


def eval_plan(sizes: list[int], place: Placement, batch: int) -> EpochPlan:
    shares = [np.array_split(_members(sizes, g), place.members) for g in place.groups]
    longest = max(len(s) for group in shares for s in group)
    if longest == 0:
        raise JeopardaError("the split holds no patches")
    steps = -(-longest // batch)
    mine = shares[place.group][place.position]
    pad = steps * batch - len(mine)
    filler = np.full(pad, mine[-1] if len(mine) else _first(sizes, place), np.int64)
    return EpochPlan(np.concatenate([mine, filler]).astype(np.int64),
                     np.concatenate([np.ones(len(mine), bool), np.zeros(pad, bool)]), steps, batch)


def _first(sizes: list[int], place: Placement) -> int:
    for g in place.groups:
        members = _members(sizes, g)
        if len(members):
            return int(members[0])
    return 0
