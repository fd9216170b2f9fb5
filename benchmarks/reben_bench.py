"""BigEarthNet v2.0 conversion and the reBEN read path, measured side by side in one run.

1. Conversion rate (patches/s, 1 worker) of the same synthetic patches from the v2.0 GeoTIFF
   tree with reference maps (with the strip fast path, and with tifffile alone), from the
   rico-hdl LMDB (+ maps), and of a v1.0 archive; kinds alternated, --repeat runs each, median.
   Goals: v2 GeoTIFF >= 150 patches/s per worker, LMDB >= 2x GeoTIFF.
2. v1.0 conversion, this checkout against --baseline REV (default: the last commit before shard
   format v2), each run in its own process and timed around the conversion alone, alternated.
   Goal: unchanged within 10 %.
3. The path a reBEN user takes today, per patch as ConfigILM's LMDB dataset does: LMDB get,
   safetensors decode, the 20 m and 60 m bands interpolated to 120x120 with torch, stacked,
   normalised, collated into batches; against `jeoparda bench loader`'s torch backend on the
   converted shards of the same patches. Both on one core (torch threads 1, no reader processes).
   Goal: shards >= 5x per core. Also both without normalisation (what the host does when the
   GPU normalises): the reBEN path's float32 batches against the loaders' batched uint16 reads
   (random batches, shard-local runs as the loader plans them are not assumed).

Usage: python benchmarks/reben_bench.py [--patches N] [--repeat R] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from jeoparda.bench.loader_bench import run as bench_loader  # noqa: E402
from jeoparda.cluster.env import ClusterEnv  # noqa: E402
from jeoparda.config import AugmentConfig, DataConfig, RunConfig, TrainConfig  # noqa: E402
from jeoparda.sentinel2 import BANDS  # noqa: E402
from jeoparda.sources.synth import synthesize  # noqa: E402
from jeoparda.sources.synth_v2 import LMDB_DIRNAME, synthesize_v2  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BASELINE = "9534afb"  # the last commit that wrote shard format v1


_DRIVER = """
import json, sys, time
from pathlib import Path
try:
    from jeoparda.convert.run import run_conversion
    from jeoparda.convert.plan import ConvertOptions
    from jeoparda.cluster.env import ClusterEnv
except ImportError:  # the layout before sources/convert/shards/loaders
    from jeoparda.data.convert import run_conversion
    from jeoparda.data.convert_plan import ConvertOptions
    from jeoparda.dist.env import ClusterEnv
if sys.argv[3:] == ["tifffile"]:  # the GeoTIFF reader before the strip fast path
    import jeoparda.sources.geotiff
    jeoparda.sources.geotiff.decode = lambda data: None
start = time.perf_counter()
manifest, _ = run_conversion(ConvertOptions(source=Path(sys.argv[1]), out=Path(sys.argv[2]), shard_size=200),
                             ClusterEnv(), lambda total: (lambda n: None))
elapsed = time.perf_counter() - start
print(json.dumps(sum(s["patches"] for s in manifest["splits"].values()) / elapsed))
"""


def convert_rate(code: Path, source: Path, out: Path, *extra: str) -> float:
    """patches/s of one conversion (1 worker) by the jeoparda at ``code``, timed in its own
    process around the conversion alone (interpreter start-up and imports excluded)."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(source), str(out), *extra], capture_output=True,
                          text=True,
                          env=env, cwd=code)
    if proc.returncode != 0:
        raise SystemExit(f"convert failed ({code}): {proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


def baseline_checkout(rev: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def reben_path(lmdb_dir: Path, names: list[str], mean: np.ndarray, std: np.ndarray, batch: int,
               steps: int, normalise: bool = True) -> float:
    """images/s of the per-patch LMDB -> safetensors -> torch interpolate path (one core), over
    ``steps`` batches (cycling through ``names``)."""
    import lmdb
    from safetensors.numpy import load

    env = lmdb.open(str(lmdb_dir), readonly=True, lock=False, readahead=False)
    mean_t = torch.from_numpy(mean.astype(np.float32)).view(-1, 1, 1)
    std_t = torch.from_numpy(std.astype(np.float32)).view(-1, 1, 1)
    images = 0
    start = time.perf_counter()
    with env.begin() as txn:
        for step in range(steps):
            samples = []
            for k in range(step * batch, (step + 1) * batch):
                name = names[k % len(names)]
                arrays = load(txn.get(name.encode()))
                bands = []
                for band in BANDS:
                    x = torch.from_numpy(arrays[band.name].astype(np.float32))[None, None]
                    if x.shape[-1] != 120:
                        x = torch.nn.functional.interpolate(x, size=(120, 120), mode="bilinear", align_corners=True)
                    bands.append(x[0, 0])
                image = torch.stack(bands)
                samples.append((image - mean_t) / std_t if normalise else image)
            torch.stack(samples)  # collate
            images += batch
    env.close()
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=1000, help="patches per synthetic archive")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, alternated")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100, help="timed batches of each read path (epochs cycle)")
    parser.add_argument("--baseline", default=BASELINE, help="git revision for the v1.0 comparison")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(tmp / "v1", args.patches, seed=1)
        synthesize_v2(tmp / "tree", args.patches, seed=1)
        synthesize_v2(tmp / "lmdb", args.patches, seed=1, lmdb=True)
        old = baseline_checkout(args.baseline, tmp / "baseline")
        rates: dict[str, list[float]] = {k: [] for k in ("v2_tree_maps", "v2_tree_maps_tifffile", "v2_lmdb_maps",
                                                          "v1", "v1_baseline")}
        for _ in range(args.repeat):
            rates["v2_tree_maps"].append(convert_rate(REPO, tmp / "tree", tmp / "out-tree"))
            rates["v2_tree_maps_tifffile"].append(convert_rate(REPO, tmp / "tree", tmp / "out-tree", "tifffile"))
            rates["v2_lmdb_maps"].append(convert_rate(REPO, tmp / "lmdb", tmp / "out-lmdb"))
            rates["v1"].append(convert_rate(REPO, tmp / "v1", tmp / "out-v1"))
            rates["v1_baseline"].append(convert_rate(old, tmp / "v1", tmp / "out-v1-old"))
        med = {k: statistics.median(v) for k, v in rates.items()}
        manifest = json.loads((tmp / "out-lmdb" / "manifest.json").read_text())
        names = [n for split in ("train", "val", "test") for n in _names(tmp / "out-lmdb", manifest, split)]
        stats = manifest["band_stats"]
        mean, std = np.array(stats["mean"]), np.array(stats["std"])
        cfg = RunConfig(data=DataConfig(path=str(tmp / "out-lmdb"), backend="torch", workers=0,
                                        augment=AugmentConfig(flip=False, rot90=False), verify_checksums=False),
                        train=TrainConfig(batch_size=args.batch))
        user, ours, user_raw, ours_raw = [], [], [], []
        for _ in range(args.repeat):
            user.append(reben_path(tmp / "lmdb" / LMDB_DIRNAME, names, mean, std, args.batch, args.steps))
            ours.append(bench_loader(cfg, ClusterEnv(), "train", args.steps, warmup=5)["images_per_s"])
            user_raw.append(reben_path(tmp / "lmdb" / LMDB_DIRNAME, names, mean, std, args.batch, args.steps,
                                       normalise=False))
            ours_raw.append(shard_reads(tmp / "out-lmdb", manifest, args.batch, args.steps))
    result = {"cpus": os.cpu_count(), "patches": args.patches, "baseline": args.baseline,
              **{f"convert_{k}_patches_per_s": round(v, 1) for k, v in med.items()},
              "lmdb_vs_tree": round(med["v2_lmdb_maps"] / med["v2_tree_maps"], 2),
              "lmdb_vs_tree_tifffile": round(med["v2_lmdb_maps"] / med["v2_tree_maps_tifffile"], 2),
              "v1_vs_baseline": round(med["v1"] / med["v1_baseline"], 3),
              "reben_path_images_per_s": round(statistics.median(user), 1),
              "shards_images_per_s": round(statistics.median(ours), 1),
              "shards_vs_reben_path": round(statistics.median(ours) / statistics.median(user), 1),
              "reben_path_unnormalised_images_per_s": round(statistics.median(user_raw), 1),
              "shard_reads_uint16_images_per_s": round(statistics.median(ours_raw), 1),
              "reads_vs_reben_path_unnormalised": round(statistics.median(ours_raw) / statistics.median(user_raw), 1),
              "runs": {**rates, "reben_path": user, "shards": ours, "reben_path_unnormalised": user_raw,
                       "shard_reads": ours_raw}}
    for k, v in med.items():
        print(f"convert {k:<24}{v:10.1f} patches/s   (runs: {', '.join(f'{x:.0f}' for x in rates[k])})")
    print(f"LMDB vs GeoTIFF tree            {result['lmdb_vs_tree']:10.2f}x")
    print(f"LMDB vs GeoTIFF tree (tifffile) {result['lmdb_vs_tree_tifffile']:10.2f}x")
    print(f"v1.0: this checkout vs {args.baseline:<8} {result['v1_vs_baseline']:10.3f}x")
    print(f"reBEN path (LMDB+torch, 1 core) {result['reben_path_images_per_s']:10.1f} images/s")
    print(f"bench loader on shards (1 core) {result['shards_images_per_s']:10.1f} images/s")
    print(f"shards vs reBEN path            {result['shards_vs_reben_path']:10.1f}x")
    print(f"reBEN path, no normalisation    {result['reben_path_unnormalised_images_per_s']:10.1f} images/s")
    print(f"shard reads, uint16 (GPU normalises) {result['shard_reads_uint16_images_per_s']:5.1f} images/s")
    print(f"reads vs reBEN path, both unnormalised {result['reads_vs_reben_path_unnormalised']:4.1f}x")
    if args.json:
        print(json.dumps(result))


def shard_reads(dataset: Path, manifest: dict, batch: int, steps: int) -> float:
    """images/s of the loaders' host side alone: batched uint16 reads of the train split (what
    the torch backend does before the GPU normalises), one core."""
    from jeoparda.loaders.split_reader import SplitReader
    from jeoparda.shards.format import layout_of_manifest

    reader = SplitReader(dataset, manifest["splits"]["train"]["shards"], layout_of_manifest(manifest))
    total = len(reader)
    rng = np.random.default_rng(0)
    plans = [np.sort(rng.choice(total, batch, replace=False)) for _ in range(steps)]
    reader.read(plans[0])  # open the shards
    start = time.perf_counter()
    for indices in plans:
        reader.read(indices)
    reader.close()
    return steps * batch / (time.perf_counter() - start)


def _names(dataset: Path, manifest: dict, split: str) -> list[str]:
    from jeoparda.shards.reader import ShardReader

    out: list[str] = []
    for entry in manifest["splits"][split]["shards"]:
        with ShardReader(dataset / entry["file"]) as shard:
            out += shard.names
    return out


if __name__ == "__main__":
    main()
