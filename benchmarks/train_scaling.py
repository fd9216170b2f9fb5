"""Weak scaling of jeoparda train on this machine (issue: jeoparda train), side by side in one run.

1 rank and 2 ranks (mpirun, DDP over gloo, one thread per rank, batch 16 per rank), each with the
synthetic backend and with real data (the torch backend reading converted shards). Throughput
X(N) is the median ``images_per_s`` of the epochs after the first (docs/benchmarking.md); weak-scaling
efficiency E(N) = X(N) / (N / N0 * X(N0)). Also: real-data throughput over synthetic for the
same N (the input pipeline should hide behind compute: goal >= 95 %).

Usage: python benchmarks/train_scaling.py [--model resnet18] [--layout v1|eurosat] [--epochs 4] [--steps 12] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(ranks: int, backend: str, data: Path, out: Path, args: argparse.Namespace) -> float:
    sets = [f"model={args.model}", f"data.path={data}", f"data.backend={backend}", "data.workers=1",
            f"train.epochs={args.epochs}", f"train.max_steps={args.steps}", "train.batch_size=16",
            "train.threads=1", "train.val_every=0", "train.test=false", "train.checkpoint_every=0",
            "dist.backend=ddp"]
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", sys.executable, "-m", "jeoparda", "train",
           "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    epochs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    rates = [e["images_per_s"] for e in epochs if e["event"] == "epoch"][1:]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--epochs", type=int, default=4, help="the first is warm-up")
    parser.add_argument("--steps", type=int, default=12, help="steps per epoch")
    parser.add_argument("--patches", type=int, default=600)
    parser.add_argument("--layout", choices=("v1", "eurosat"), default="v1",
                        help="synthetic archive: BigEarthNet v1.0 (12x120x120, multi-label) or EuroSAT (13x64x64)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "jeoparda", "synth", "--out", str(tmp / "a"), "--patches",
                        str(args.patches), "--layout", args.layout], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "jeoparda", "convert", "--source", str(tmp / "a"), "--out",
                        str(tmp / "d"), "--shard-size", "64"], check=True, capture_output=True)
        x = {(n, b): run(n, b, tmp / "d", tmp / f"run-{n}-{b}", args)
             for b in ("synthetic", "torch") for n in (1, 2)}
    result = {"model": args.model, "layout": args.layout, "batch_per_rank": 16, "threads_per_rank": 1,
              "images_per_s": {f"{b}_{n}": v for (n, b), v in x.items()},
              "efficiency_2": {b: x[(2, b)] / (2 * x[(1, b)]) for b in ("synthetic", "torch")},
              "real_over_synthetic": {n: x[(n, "torch")] / x[(n, "synthetic")] for n in (1, 2)}}
    for (n, b), v in x.items():
        print(f"{b:<10} {n} rank(s): {v:8.1f} images/s")
    for b, e in result["efficiency_2"].items():
        print(f"weak-scaling efficiency, 2 ranks, {b}: {100 * e:.1f} %")
    for n, r in result["real_over_synthetic"].items():
        print(f"real data / synthetic, {n} rank(s): {100 * r:.1f} %")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
