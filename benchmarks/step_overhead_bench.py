"""Per-step overheads the training loop adds (GPU-readiness issue, items 11 and 16), on this machine.

1. The preemption check: one all-reduce of a flag plus a host read. Times it alone under
   `mpirun -np 2` (gloo), and the training rate of 2 ranks with the check every step against every
   10 steps (ResNet18, synthetic data, batch 16 per rank, one thread per rank).
2. LAMB: its step on ResNet-50's parameters against Adam's (the optimiser it extends), for this
   checkout's LAMB and the one before (parameters cloned every step, a host sync per parameter).

Usage: python benchmarks/step_overhead_bench.py [--json]     (mpirun on PATH)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
PROBE = """
import time, torch, torch.distributed as dist
from jeoparda.cluster.backends import create_backend
from jeoparda.cluster.env import detect
from jeoparda.config import DistConfig
b = create_backend(detect(), DistConfig(backend="ddp"))
flag = torch.zeros(())
for _ in range(50):
    b.all_reduce(flag, op="max").item()
start = time.perf_counter()
for _ in range(500):
    b.all_reduce(flag, op="max").item()
if b.rank == 0:
    print((time.perf_counter() - start) / 500)
b.shutdown()
"""


def check_cost() -> float:
    out = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", sys.executable, "-c", PROBE], env=ENV,
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def train_rate(every: int, out: Path) -> float:
    sets = ["model=resnet18", "data.backend=synthetic", "data.synthetic_patches=640", "train.batch_size=16",
            "train.epochs=3", "train.threads=1", "train.val_every=0", "train.test=false", "train.checkpoint_every=0",
            "dist.backend=ddp", f"train.preempt_check_every={every}"]
    subprocess.run(["mpirun", "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "train", "--out",
                    str(out)] + [x for s in sets for x in ("--set", s)], env=ENV, capture_output=True, check=True)
    epochs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return statistics.median(e["images_per_s"] for e in epochs if e["event"] == "epoch")


class OldLAMB(torch.optim.Adam):
    """The LAMB before this change, kept here to measure against."""

    def __init__(self, params, lr, weight_decay=0.0):
        super().__init__(params, lr=lr, eps=1e-6, weight_decay=0.0)
        self.wd = weight_decay

    @torch.no_grad()
    def step(self, closure=None):
        before = {p: p.detach().clone() for g in self.param_groups for p in g["params"] if p.grad is not None}
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p not in before:
                    continue
                update = (p - before[p]) - group["lr"] * self.wd * before[p] * (p.ndim > 1)
                w_norm, d_norm = before[p].norm(), update.norm() / group["lr"]
                ratio = w_norm / d_norm if (w_norm > 0 and d_norm > 0 and p.ndim > 1) else 1.0
                p.copy_(before[p] + update * ratio)


def optimiser_step(make) -> float:
    from jeoparda.models import create_model

    model = create_model("resnet50")
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt = make(model.parameters())
    for _ in range(3):
        opt.step()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from jeoparda.training.optim import LAMB

    torch.set_num_threads(1)
    cost = statistics.median(check_cost() for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        rates: dict[int, list[float]] = {1: [], 10: []}
        for i in range(2):
            for every in (1, 10):
                rates[every].append(train_rate(every, Path(tmp) / f"r{every}-{i}"))
    steps = {"adam": [], "lamb": [], "lamb_before": []}
    for _ in range(2):
        steps["adam"].append(optimiser_step(lambda p: torch.optim.Adam(p, lr=1e-3)))
        steps["lamb"].append(optimiser_step(lambda p: LAMB(p, lr=1e-3, weight_decay=0.01)))
        steps["lamb_before"].append(optimiser_step(lambda p: OldLAMB(p, lr=1e-3, weight_decay=0.01)))
    med = {k: statistics.median(v) for k, v in steps.items()}
    r1, r10 = statistics.median(rates[1]), statistics.median(rates[10])
    print(f"preemption check (all-reduce + read), 2 ranks: {1e3 * cost:.3f} ms per check")
    print(f"ResNet18 2 ranks, check every step: {r1:.1f} images/s; every 10 steps: {r10:.1f} images/s "
          f"({100 * (r10 / r1 - 1):+.1f} %)")
    for k, v in med.items():
        print(f"{k:<12} step on ResNet-50's parameters: {1e3 * v:8.1f} ms ({v / med['adam']:.2f}x Adam)")
    if args.json:
        print(json.dumps({"check_ms": 1e3 * cost, "rate_every_1": r1, "rate_every_10": r10,
                          "optimiser_step_ms": {k: 1e3 * v for k, v in med.items()}, "runs": rates}))


if __name__ == "__main__":
    main()
