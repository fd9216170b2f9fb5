"""Input-pipeline goals (issue: shard streaming input pipeline), side by side in one run.

1. the torch backend against reading the same patches from their 12 GeoTIFFs with bilinear
   resampling (rasterio, as torchgeo does);
2. patches/s per core including normalisation to float32: the torch backend with no reader
   processes, i.e. everything on one core (augmentation off);
3. data wait in a ResNet18 training loop on CPU (torch backend, 1 reader process, batch 32):
   time blocked on ``next(loader)`` over time per step;
4. the DALI backend on CPU against the torch backend, both with 2 workers (processes / threads).

Loader rates are medians of ``--repeat`` alternated runs (the VM's speed drifts). Usage:
python benchmarks/loader_bench.py [--patches 1200] [--steps 100] [--repeat 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

from jeoparda.bench.loader_bench import endless, run  # noqa: E402
from jeoparda.cluster.env import ClusterEnv  # noqa: E402
from jeoparda.config import AugmentConfig, DataConfig, RunConfig, TrainConfig  # noqa: E402
from jeoparda.loaders.build import build_loader  # noqa: E402
from jeoparda.models import create_model  # noqa: E402
from jeoparda.shards.reader import ShardReader  # noqa: E402
from jeoparda.sources.synth import synthesize  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from convert_bench import convert_rate, read_geotiffs  # noqa: E402

NO_AUG = AugmentConfig(flip=False, rot90=False)


def cfg(path: Path, backend: str, workers: int, augment: AugmentConfig = NO_AUG, batch: int = 32) -> RunConfig:
    return RunConfig(data=DataConfig(path=str(path), backend=backend, workers=workers, augment=augment),
                     train=TrainConfig(batch_size=batch))


def data_wait(path: Path, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = create_model("resnet18")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    stream = endless(build_loader(cfg(path, "torch", 1, AugmentConfig()), ClusterEnv(), "train"))
    waits, totals = [], []
    for i in range(steps + 2):
        start = time.perf_counter()
        batch = next(stream)
        got = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch["image"]), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:  # the first steps include reader start-up
            waits.append(got - start)
            totals.append(time.perf_counter() - start)
    return {"wait_s": sum(waits), "step_s": sum(totals), "wait_fraction": sum(waits) / sum(totals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=1200)
    parser.add_argument("--steps", type=int, default=100, help="timed loader steps per run (after 10 warm-up)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=12, help="ResNet18 steps for data wait")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(tmp / "archive", args.patches, seed=2)
        convert_rate(tmp / "archive", tmp / "data", workers=2)
        manifest = json.loads((tmp / "data" / "manifest.json").read_text())
        patch_names = []
        for entry in manifest["splits"]["train"]["shards"]:
            with ShardReader(tmp / "data" / entry["file"]) as shard:
                patch_names += shard.names
        tiff = read_geotiffs(tmp / "archive" / "BigEarthNet-v1.0", patch_names[:300])
        runs = {"torch_1core": ("torch", 0, NO_AUG), "torch_2workers": ("torch", 2, NO_AUG),
                "torch_2workers_aug": ("torch", 2, AugmentConfig()), "dali_2threads": ("dali", 2, NO_AUG)}
        rates: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeat):
            for key, (backend, workers, aug) in runs.items():
                rates[key].append(run(cfg(tmp / "data", backend, workers, aug), ClusterEnv(), "train",
                                      args.steps, warmup=10)["images_per_s"])
        med = {k: statistics.median(v) for k, v in rates.items()}
        wait = data_wait(tmp / "data", args.train_steps)
    best_torch = max(med["torch_1core"], med["torch_2workers"])
    result = {"cpus": os.cpu_count(), "geotiff_patches_per_s": tiff, **{f"{k}_images_per_s": v for k, v in med.items()},
              "torch_vs_geotiff": best_torch / tiff, "dali_vs_torch": med["dali_2threads"] / med["torch_2workers"],
              "resnet18_data_wait_fraction": wait["wait_fraction"], "runs": rates}
    print(f"GeoTIFFs + bilinear (1 core)        {tiff:10.1f} patches/s")
    for k, v in med.items():
        print(f"{k:<36}{v:10.1f} images/s   (runs: {', '.join(f'{x:.0f}' for x in rates[k])})")
    print(f"torch backend vs GeoTIFFs           {best_torch / tiff:10.1f}x")
    print(f"DALI (CPU) vs torch, 2 workers each {med['dali_2threads'] / med['torch_2workers']:10.2f}x")
    print(f"ResNet18 CPU loop: data wait        {100 * wait['wait_fraction']:10.2f} % of step time "
          f"({wait['wait_s']:.3f} s of {wait['step_s']:.1f} s)")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
