"""``jeoparda synth``, ``convert`` and ``inspect``: making and checking data sets."""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from jeoparda.cli.common import positive_int
from jeoparda.errors import JeopardaError


def add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="write a synthetic archive in the BigEarthNet-S2 v1.0 layout",
        description="Write a synthetic archive in the BigEarthNet-S2 v1.0 layout: one uint16 "
        "GeoTIFF per band at native resolution (120/60/20 px), labels JSON, split CSVs in "
        "OUT/splits/ (50/25/25) and the two noisy-patch lists. Every label has a spectral "
        "signature and texture, so models can learn from it. Deterministic for a seed.")
    p.add_argument("--out", type=Path, required=True, help="folder to create the archive in")
    p.add_argument("--patches", type=positive_int, required=True, help="number of patches")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from jeoparda.sources.synth import synthesize
    from jeoparda.progress import Progress

    if args.out.exists() and any(args.out.iterdir()):
        raise JeopardaError(f"{args.out}: folder is not empty; choose a new folder")
    bar = Progress(args.patches, "synth")
    splits = synthesize(args.out, args.patches, args.seed, progress=bar.update)
    bar.close()
    print(f"wrote {args.patches} patches to {args.out} "
          f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])})")
    return 0


def add_convert(sub: argparse._SubParsersAction) -> None:
    from jeoparda.convert.resample import METHODS
    from jeoparda.shards.format import COMPRESSION

    p = sub.add_parser(
        "convert", help="convert a BigEarthNet-S2 archive into sharded 12-band HDF5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert a BigEarthNet-S2 v1.0 archive into sharded HDF5 (docs/data-format.md):\n"
        "every band at 10 m (120x120), uint16, canonical band order, 43- and 19-class labels,\n"
        "train-split band statistics and a SHA-256 per shard in OUT/manifest.json.\n\n"
        "Damaged patches are listed in the manifest's 'rejected' and skipped (or end the run with\n"
        "--strict). An interrupted run resumes when started again with the same arguments.\n"
        "Under mpirun or srun every rank converts a disjoint share of the shards; the output is\n"
        "byte-identical whatever the number of ranks and workers.")
    p.add_argument("--source", type=Path, required=True,
                   help="the BigEarthNet-v1.0 folder, or the folder that holds it")
    p.add_argument("--out", type=Path, required=True, help="output folder for shards and manifest")
    p.add_argument("--splits", type=Path, dest="splits_dir", metavar="DIR",
                   help="folder with train.csv, val.csv, test.csv (default: SOURCE/splits if it "
                   "exists, else a 70/15/15 split by hash of the patch name)")
    p.add_argument("--exclude", type=Path, action="append", default=[], metavar="CSV",
                   help="list of patches to leave out (repeatable: the seasonal-snow and "
                   "cloud-and-shadow lists)")
    p.add_argument("--shard-size", type=positive_int, default=1000, metavar="N",
                   help="patches per shard (default 1000, about 330 MB uncompressed)")
    p.add_argument("--resample", choices=METHODS, default="bicubic",
                   help="method for bringing 20 m and 60 m bands to 10 m (default bicubic)")
    p.add_argument("--compression", choices=list(COMPRESSION), default="none",
                   help="HDF5 compression of the images (default none; lzf is fast, gzip small)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes on this node (per MPI rank; default 1)")
    p.add_argument("--strict", action="store_true", help="stop at the first damaged patch (exit 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing, different data set in OUT")
    p.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from jeoparda.convert.run import run_conversion
    from jeoparda.convert.plan import ConvertOptions, noisy_list_hint
    from jeoparda.cluster.env import detect
    from jeoparda.progress import Progress

    env = detect()
    opts = ConvertOptions(source=args.source, out=args.out, splits_dir=args.splits_dir,
                          excludes=tuple(args.exclude), shard_size=args.shard_size,
                          resample=args.resample, compression=args.compression,
                          workers=args.workers, strict=args.strict, overwrite=args.overwrite)
    if env.is_root:
        for path in noisy_list_hint(opts):
            warnings.warn(f"{path} exists but no --exclude was given; its patches are converted")
    bars: list[Progress] = []

    def make_tick(total: int):
        label = "convert" if env.world_size == 1 else f"convert (rank 0 of {env.world_size})"
        bars.append(Progress(total, label, enabled=env.is_root))
        return bars[-1].update

    start = time.perf_counter()
    manifest, state = run_conversion(opts, env, make_tick)
    for bar in bars:
        bar.close()
    if not env.is_root:
        return 0
    elapsed = time.perf_counter() - start
    if state == "complete":
        print(f"{args.out} already holds this data set, complete; nothing to do "
              f"(jeoparda inspect {args.out} verifies it)")
        return 0
    _print_convert_summary(manifest, args, elapsed, env.world_size)
    return 0


def _print_convert_summary(manifest: dict, args: argparse.Namespace, elapsed: float, ranks: int) -> None:
    splits = manifest["splits"]
    done = sum(s["patches"] for s in splits.values())
    shards = sum(len(s["shards"]) for s in splits.values())
    rejected = manifest["rejected"]
    seen = done + len(rejected)
    print(f"converted {done} patches (" + ", ".join(f"{k} {v['patches']}" for k, v in splits.items())
          + f") into {shards} shards in {args.out}")
    print(f"rejected {len(rejected)} damaged patches, excluded {len(manifest['excluded'])} "
          "noisy patches")
    for r in rejected[:10]:
        print(f"  {r['patch']}: {r['reason']} ({r['file']})")
    if len(rejected) > 10:
        print(f"  … and {len(rejected) - 10} more, listed in {args.out}/manifest.json")
    print(f"{elapsed:.1f} s, {seen / max(elapsed, 1e-9):.1f} patches/s "
          f"({args.workers} worker(s) x {ranks} rank(s))")


def add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="summarise a converted data set and verify its shards",
        description="Print patches per split, class frequencies, band statistics and the "
        "rejected/excluded counts of a converted data set, after verifying every shard's "
        "SHA-256 and format against the manifest. Exit status 1, naming the shard, on any "
        "mismatch.")
    p.add_argument("dataset", type=Path, metavar="OUT", help="a folder written by jeoparda convert")
    p.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from jeoparda.shards.inspect import summary_lines, verify_dataset
    from jeoparda.shards.manifest import read_manifest
    from jeoparda.progress import Progress

    manifest = read_manifest(args.dataset)
    total = sum(len(s["shards"]) for s in manifest["splits"].values())
    bar = Progress(total, "verify", unit="shards")
    problems, counts = verify_dataset(args.dataset, manifest, bar.update)
    bar.close()
    print("\n".join(summary_lines(args.dataset, manifest, counts)))
    if problems:
        for problem in problems:
            print(f"jeoparda: error: {problem}", file=sys.stderr)
        return 1
    print(f"\nall {total} shards verified (checksum and format)")
    return 0
