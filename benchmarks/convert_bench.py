"""Conversion and read-back benchmark (issue: foundation and convert).

Measured side by side in one run on the same machine:
1. conversion rate (patches/s) with 1 and 2 worker processes, and the 2-vs-1 speed-up;
2. reading the same patches back from the shards in batches, against reading them from their 12
   GeoTIFFs with bilinear resampling through rasterio (what torchgeo's BigEarthNet dataset does).

Conversion rates are the mean of --repeat runs per worker count, alternated; the shard read rate
is the median of 3 passes. Usage: python benchmarks/convert_bench.py [--patches N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from jeoparda.cluster.env import ClusterEnv  # noqa: E402
from jeoparda.convert.plan import ConvertOptions  # noqa: E402
from jeoparda.convert.run import run_conversion  # noqa: E402
from jeoparda.sentinel2 import BAND_NAMES  # noqa: E402
from jeoparda.shards.reader import ShardReader  # noqa: E402
from jeoparda.sources.bigearthnet_v1 import band_path, locate_root  # noqa: E402
from jeoparda.sources.synth import synthesize  # noqa: E402


def convert_rate(source: Path, out: Path, workers: int) -> float:
    start = time.perf_counter()
    manifest, _ = run_conversion(ConvertOptions(source=source, out=out, shard_size=200, workers=workers),
                                 ClusterEnv(), lambda total: (lambda n: None))
    elapsed = time.perf_counter() - start
    return sum(s["patches"] for s in manifest["splits"].values()) / elapsed


def read_shards(dataset: Path, manifest: dict, count: int, batch: int) -> tuple[float, list[str]]:
    """Batched reads through ShardReader into one reusable buffer (the loaders' read path)."""
    names: list[str] = []
    buffer = np.empty((batch, 12, 120, 120), np.uint16)
    start = time.perf_counter()
    for entry in manifest["splits"]["train"]["shards"]:
        with ShardReader(dataset / entry["file"]) as shard:
            for i in range(0, len(shard), batch):
                stop = min(i + batch, len(shard), i + count - len(names))
                shard.read_images(i, stop, buffer)
                names += shard.names[i:stop]
                if len(names) >= count:
                    return len(names) / (time.perf_counter() - start), names
    return len(names) / (time.perf_counter() - start), names


def read_geotiffs(root: Path, names: list[str]) -> float:
    import rasterio
    from rasterio.enums import Resampling

    start = time.perf_counter()
    for name in names:
        bands = []
        for band in BAND_NAMES:
            with rasterio.open(band_path(root, name, band)) as src:
                bands.append(src.read(1, out_shape=(120, 120), resampling=Resampling.bilinear))
        np.stack(bands)
    return len(names) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=6000,
                        help="patches in the synthetic archive (enough that worker start-up is amortised)")
    parser.add_argument("--read", type=int, default=1200, help="patches read back from shards (3 passes)")
    parser.add_argument("--tiff-read", type=int, default=400, help="of those, read from GeoTIFFs")
    parser.add_argument("--repeat", type=int, default=2, help="conversions per worker count")
    parser.add_argument("--batch", type=int, default=64, help="patches per batched shard read")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(tmp / "archive", args.patches, seed=1)
        # Alternate 1 and 2 workers so that drift on a shared machine hits both alike.
        rates: dict[int, list[float]] = {1: [], 2: []}
        for workers in (1, 2) * args.repeat:
            shutil.rmtree(tmp / "out", ignore_errors=True)
            rates[workers].append(convert_rate(tmp / "archive", tmp / "out", workers))
        one, two = statistics.mean(rates[1]), statistics.mean(rates[2])
        manifest = json.loads((tmp / "out" / "manifest.json").read_text())
        passes = [read_shards(tmp / "out", manifest, args.read, args.batch) for _ in range(3)]
        shard_rate, names = statistics.median(p[0] for p in passes), passes[0][1]
        tiff_rate = read_geotiffs(locate_root(tmp / "archive"), names[:args.tiff_read])
    result = {"cpus": os.cpu_count(), "patches": args.patches,
              "convert_1_worker_patches_per_s": round(one, 1),
              "convert_2_workers_patches_per_s": round(two, 1), "speedup_2_vs_1": round(two / one, 2),
              "shard_read_patches_per_s": round(shard_rate, 1),
              "geotiff_read_patches_per_s": round(tiff_rate, 1),
              "shard_vs_geotiff": round(shard_rate / tiff_rate, 1), "batch": args.batch}
    print(f"conversion, 1 worker      {one:10.1f} patches/s")
    print(f"conversion, 2 workers     {two:10.1f} patches/s   ({two / one:.2f}x)")
    print(f"read shards, batch {args.batch:<4}   {shard_rate:10.1f} patches/s")
    print(f"read GeoTIFFs + bilinear  {tiff_rate:10.1f} patches/s")
    print(f"shards vs GeoTIFFs        {shard_rate / tiff_rate:10.1f}x")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
