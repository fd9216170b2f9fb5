"""Whole-tile maps: time and peak memory of ``jeoparda predict`` on a tile whose patches are scattered
(as BigEarthNet's are) against the same number of patches laid side by side (issue: whole-tile maps).

Builds, in ``--work`` (default a temporary folder), a synthetic BigEarthNet v2.0 archive of
``--patches`` patches (default 200) scattered over four tiles and converts it; takes the tile with
the most patches (or ``--tile``); builds a ``synth --block`` archive with that many patches side by side; trains
nothing (an FCN with seeded random weights labels as fast as a trained one). Then runs ``jeoparda
predict`` on both, alternated, ``--repeat`` times (default 3), each in a fresh process whose peak
resident memory is read from the kernel (``wait4``), and reports the medians, the ratio
scattered / block, the goal (scattered <= 3 x block + 5 s, peak <= 2 GB) and the map's overviews.

Usage: python benchmarks/predict_tile.py [--patches 200] [--tile T] [--model fcn_maggiori] [--repeat 3]
                                        [--work DIR] [--json]
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

from jeoparda.inference.plan import find_patches
from jeoparda.models import create_model
from jeoparda.shards.manifest import read_manifest


def jeoparda(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "jeoparda", *args], check=True, capture_output=True, text=True)


def archive(work: Path, name: str, patches: int, block: bool) -> Path:
    data = work / name / "data"
    if not (data / "manifest.json").exists():
        jeoparda("synth", "--layout", "v2", "--patches", str(patches), "--out", str(work / name / "arch"),
                 *(["--block"] if block else []))
        jeoparda("convert", "--source", str(work / name / "arch"), "--out", str(data), "--shard-size", "64")
    return data


def timed(args: list[str]) -> tuple[float, float, dict]:
    """Seconds, peak RSS (GB) and the JSON summary of one predict in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jeoparda", "predict", *args, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict failed: {' '.join(args)}")
    summary = json.loads(out.strip().splitlines()[-1])
    return seconds, usage.ru_maxrss * 1024 / 1e9, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", type=int, default=200)
    ap.add_argument("--model", default="fcn_maggiori")
    ap.add_argument("--tile", help="the scattered tile to label (default: the one with the most patches)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="predict-tile-"))
    scattered = archive(work, "scattered", args.patches, block=False)
    tiles = find_patches(scattered, read_manifest(scattered), "all")
    tile = args.tile or max(tiles, key=lambda t: len(tiles[t]))
    patches = tiles[tile]
    block = archive(work, f"block{len(patches)}", len(patches) + 2, block=True)  # a few fall to snow/cloud
    (block_tile,) = find_patches(block, read_manifest(block), "all")  # synth --block fills one tile
    torch.manual_seed(0)
    ckpt = work / f"{args.model}.pt"
    torch.save({"model": create_model(args.model).state_dict(), "config": {"model": args.model}}, ckpt)
    runs: dict[str, list[tuple[float, float, dict]]] = {"scattered": [], "block": []}
    for _ in range(args.repeat):
        for name, data, which in (("scattered", scattered, tile), ("block", block, block_tile)):  # alternated
            runs[name].append(timed(["--checkpoint", str(ckpt), "--data", str(data), "--tile", which,
                                     "--out", str(work / f"{name}.tif")]))
    med = {name: (statistics.median(r[0] for r in rs), max(r[1] for r in rs), rs[-1][2]) for name, rs in runs.items()}
    (s_time, s_rss, s_sum), (b_time, b_rss, b_sum) = med["scattered"], med["block"]
    result = {
        "tile": tile, "model": args.model, "repeat": args.repeat, "cpu": os.cpu_count(),
        "scattered": {"patches": s_sum["patches"], "map": f"{s_sum['width']}x{s_sum['height']}", "seconds": s_time,
                      "peak_rss_gb": s_rss, "windows": s_sum["windows"], "computed_pixels": s_sum["computed_pixels"],
                      "overviews": s_sum["overviews"]},
        "block": {"patches": b_sum["patches"], "map": f"{b_sum['width']}x{b_sum['height']}", "seconds": b_time,
                  "peak_rss_gb": b_rss, "windows": b_sum["windows"], "computed_pixels": b_sum["computed_pixels"]},
        "time_ratio": s_time / b_time,
        "time_goal_met": s_time <= 3 * b_time + 5, "memory_goal_met": s_rss <= 2.0,
    }
    print(f"tile {tile}: scattered {s_sum['patches']} patches on a {result['scattered']['map']} map: "
          f"{s_time:.1f} s, peak {s_rss:.2f} GB, {s_sum['windows']} windows; block {b_sum['patches']} patches "
          f"({result['block']['map']}): {b_time:.1f} s, peak {b_rss:.2f} GB; ratio {result['time_ratio']:.2f} "
          f"(goal <= 3 x block + 5 s: {'met' if result['time_goal_met'] else 'MISSED'}; peak <= 2 GB: "
          f"{'met' if result['memory_goal_met'] else 'MISSED'})")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
