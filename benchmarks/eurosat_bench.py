"""The input pipeline on EuroSAT-shaped data (13 x 64 x 64 uint16, one label each), side by side.

Synthesises --images EuroSAT images, converts them, then times `jeoparda bench loader`'s torch
backend with 1 and 2 reader processes and the DALI backend with 1 and 2 CPU threads on the train
split (batch 64, augmentation off; 10 warm-up steps, then --steps steps cycling epochs),
alternated, --repeat runs each, median. Torch threads are left as they are (2 on this machine).

Usage: python benchmarks/eurosat_bench.py [--images N] [--steps S] [--repeat R] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from jeoparda.bench.loader_bench import run  # noqa: E402
from jeoparda.cluster.env import ClusterEnv  # noqa: E402
from jeoparda.config import AugmentConfig, DataConfig, RunConfig, TrainConfig  # noqa: E402
from jeoparda.convert.plan import ConvertOptions  # noqa: E402
from jeoparda.convert.run import run_conversion  # noqa: E402
from jeoparda.sources.synth_eurosat import synthesize_eurosat  # noqa: E402

RUNS = {"torch_1worker": ("torch", 1), "torch_2workers": ("torch", 2), "dali_1thread": ("dali", 1),
        "dali_2threads": ("dali", 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize_eurosat(tmp / "es", args.images, seed=4)
        run_conversion(ConvertOptions(source=tmp / "es", out=tmp / "d", shard_size=256, workers=2), ClusterEnv(),
                       lambda total: (lambda n: None))
        rates: dict[str, list[float]] = {k: [] for k in RUNS}
        for _ in range(args.repeat):
            for key, (backend, workers) in RUNS.items():
                cfg = RunConfig(data=DataConfig(path=str(tmp / "d"), backend=backend, workers=workers,
                                                augment=AugmentConfig(flip=False, rot90=False)),
                                train=TrainConfig(batch_size=64))
                rates[key].append(run(cfg, ClusterEnv(), "train", args.steps, warmup=10)["images_per_s"])
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k:<16}{v:10.1f} images/s   (runs: {', '.join(f'{x:.0f}' for x in rates[k])})")
    print(f"DALI vs torch, 2 each {med['dali_2threads'] / med['torch_2workers']:8.2f}x")
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "images": args.images, **{f"{k}_images_per_s": v
                                                                            for k, v in med.items()},
                          "runs": rates}))


if __name__ == "__main__":
    main()
