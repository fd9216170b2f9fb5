"""Interconnect model for all-reduce: latency-bandwidth (Hockney) costs of ring and tree algorithms.

A system has ``gpus_per_node`` GPUs joined inside a node by a fast fabric (NVLink) and nodes joined
by a network (InfiniBand). Bandwidths are *bus* bandwidths as nccl-tests reports them: what one
GPU's link sustains; across nodes the bottleneck is the node's network share, so a job on more
than one node sees ``min(intra_gbs, node_gbs)``. Latencies are per hop.

For p GPUs on n = ceil(p / g) nodes (g = GPUs per node used) and a message of S bytes:

  ring  T = 2 (p - 1) a + 2 (p - 1)/p * S / B       a = a_intra on one node, else a_inter
  tree  T = 2 [(g - 1) a_intra + ceil(log2 n) a_inter] + 2 S / B   (chain in a node, tree across)

A ring's 2 (p - 1) steps run in lock-step, so each costs the slowest hop's latency; a pipelined
tree costs its depth.

B is the bus bandwidth above. Ring is bandwidth-optimal, tree has logarithmic latency across nodes
(NCCL's double binary tree); ``auto`` takes the faster of the two, as NCCL's tuner does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from jeoparda.errors import JeopardaError

ALGORITHMS = ("ring", "tree", "auto")


@dataclass(frozen=True)
class System:
    """An interconnect: GPUs per node, per-hop latencies (s) and bus bandwidths (bytes/s)."""

    name: str
    gpus_per_node: int
    intra_latency_s: float
    intra_bandwidth: float
    inter_latency_s: float
    node_bandwidth: float
    description: str = ""

    def bandwidth(self, p: int) -> float:
        """Bus bandwidth seen by an all-reduce over p GPUs."""
        return self.intra_bandwidth if p <= self.gpus_per_node else min(self.intra_bandwidth, self.node_bandwidth)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "gpus_per_node": self.gpus_per_node,
                "intra_latency_us": self.intra_latency_s * 1e6, "intra_bandwidth_gbs": self.intra_bandwidth / 1e9,
                "inter_latency_us": self.inter_latency_s * 1e6, "node_bandwidth_gbs": self.node_bandwidth / 1e9,
                "description": self.description}


# Sustained bus bandwidths (about 85-90 % of the nominal link rates given in the descriptions) and
# per-hop latencies of the order NCCL shows for small messages. Assumptions, not measurements:
# measure your own with `jeoparda bench allreduce` and pass them with --allreduce or the overrides.
PRESETS: dict[str, System] = {
    "v100-edr": System(
        "v100-edr", 4, 5e-6, 100e9, 8e-6, 11e9,
        "4x V100 SXM2 per node, NVLink 2.0 (nominal 150 GB/s per GPU, assumed 100 GB/s bus), "
        "1x EDR InfiniBand per node (100 Gb/s = 12.5 GB/s nominal, assumed 11 GB/s)"),
    "a100-hdr200": System(
        "a100-hdr200", 4, 4e-6, 200e9, 6e-6, 88e9,
        "4x A100 SXM4 per node, NVLink 3.0 (nominal 300 GB/s per GPU, assumed 200 GB/s bus), "
        "4x HDR200 InfiniBand per node (4 x 25 GB/s = 100 GB/s nominal, assumed 88 GB/s)"),
    "h100-ndr400": System(
        "h100-ndr400", 8, 3e-6, 360e9, 5e-6, 350e9,
        "8x H100 SXM5 per node, NVLink 4.0 via NVSwitch (nominal 450 GB/s per GPU, assumed 360 GB/s "
        "bus), 8x NDR400 InfiniBand per node (8 x 50 GB/s = 400 GB/s nominal, assumed 350 GB/s)"),
}


def preset(name: str) -> System:
    try:
        return PRESETS[name]
    except KeyError:
        raise JeopardaError(f"unknown system {name!r}; presets: {', '.join(PRESETS)}") from None


def nodes_for(system: System, p: int) -> int:
    return math.ceil(p / system.gpus_per_node)


def ring_time(system: System, p: int, nbytes: float) -> float:
    if p <= 1:
        return 0.0
    alpha = system.intra_latency_s if nodes_for(system, p) == 1 else system.inter_latency_s
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / system.bandwidth(p)


def tree_time(system: System, p: int, nbytes: float) -> float:
    if p <= 1:
        return 0.0
    n = nodes_for(system, p)
    g = min(p, system.gpus_per_node)
    hops = 2 * ((g - 1) * system.intra_latency_s + math.ceil(math.log2(n)) * system.inter_latency_s)
    return hops + 2 * nbytes / system.bandwidth(p)


def allreduce_time(system: System, p: int, nbytes: float, algorithm: str = "auto") -> float:
    """Seconds for one all-reduce of ``nbytes`` over ``p`` GPUs."""
    if algorithm == "ring":
        return ring_time(system, p, nbytes)
    if algorithm == "tree":
        return tree_time(system, p, nbytes)
    if algorithm == "auto":
        return min(ring_time(system, p, nbytes), tree_time(system, p, nbytes))
    raise JeopardaError(f"unknown all-reduce algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def fit_measured(sizes: list[dict[str, Any]], world_size: int, name: str = "measured") -> System:
    """A one-node system fitted to ``jeoparda bench allreduce`` rows (ring model, weighted least squares).

    T(S) = 2 (n - 1) a + 2 (n - 1)/n S / B is fitted to the measured median times, each weighted by
    1/T so that small and large messages count alike; the node is ``world_size`` GPUs wide and the
    network defaults to the same latency and bandwidth (override it for multi-node projections).
    """
    if world_size < 2:
        raise JeopardaError("all-reduce figures from one process say nothing about the network; "
                            "run `jeoparda bench allreduce` with at least 2 processes")
    size = np.array([float(r["bytes"]) for r in sizes])
    secs = np.array([float(r["time_us"]) * 1e-6 for r in sizes])
    if len(size) < 2 or np.ptp(size) == 0:
        raise JeopardaError("need all-reduce times for at least two message sizes to fit latency and bandwidth")
    slope, intercept = np.polyfit(size, secs, 1, w=1 / secs)
    if slope <= 0:
        raise JeopardaError("all-reduce times do not grow with message size; cannot fit a bandwidth")
    n = world_size
    alpha = max(float(intercept), 0.0) / (2 * (n - 1))
    bandwidth = 2 * (n - 1) / n / float(slope)
    return System(name, n, alpha, bandwidth, alpha, bandwidth,
                  f"fitted to bench allreduce over {n} processes: {alpha * 1e6:.1f} us per hop, "
                  f"{bandwidth / 1e9:.2f} GB/s bus bandwidth")


def with_overrides(system: System, **values: Any) -> System:
    """The system with the given fields replaced (None leaves a field as it is)."""
    return replace(system, **{k: v for k, v in values.items() if v is not None})
