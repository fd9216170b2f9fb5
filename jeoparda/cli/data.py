"""``jeoparda synth``, ``convert`` and ``inspect``: making and checking data sets."""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from jeoparda.cli.common import positive_int
from jeoparda.errors import JeopardaError
from jeoparda.sources.kinds import ARCHIVE_KINDS, ArchiveKind, SynthRequest, kind_of_layout


def add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="write a synthetic archive (BigEarthNet v1.0, v2.0 or rico-hdl LMDB layout)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a synthetic archive that `jeoparda convert` reads like the real one.\n\n"
        + _kinds_help(lambda kind: kind.layout, 4, lambda kind: kind.synth_summary, continuation=8) + "\n\n"
        "Every label has a spectral signature and texture, so models can learn from it.\n"
        "Patches stream to disk in constant memory, rendered by --workers processes (the LMDB\n"
        "is written by this process alone, in batched transactions). Deterministic for a seed,\n"
        "and the same output whatever --workers.")
    p.add_argument("--out", type=Path, required=True, help="folder to create the archive in")
    p.add_argument("--patches", "--images", dest="patches", type=positive_int, required=True,
                   help="number of patches (EuroSAT: images)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--layout", choices=[kind.layout for kind in ARCHIVE_KINDS.values()], default="v1",
                   help="archive layout to write (default v1)")
    p.add_argument("--block", action="store_true",
                   help="v2/lmdb: lay the patches side by side on one tile (a small tile for jeoparda predict) "
                   "instead of scattering them over several")
    p.add_argument("--sr-truth", action="store_true",
                   help="v1: also keep every band's 10 m rendering in OUT/sr-truth/<patch>.npy (the truth the 20 m "
                   "and 60 m bands were averaged from), for `jeoparda sr eval --truth`")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="processes rendering (and, except for lmdb, writing) the patches; 1 renders in this process "
                   "(default: the CPUs this process may use, at most 8); the output does not depend on it")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from jeoparda.progress import Progress
    from jeoparda.sources.synth_pool import default_workers

    if args.out.exists() and any(args.out.iterdir()):
        raise JeopardaError(f"{args.out}: folder is not empty; choose a new folder")
    kind = kind_of_layout(args.layout)
    if args.block and "block" not in kind.synth_options:
        raise JeopardaError(f"--block is for the {_layouts_taking('block')} layouts (their patch names carry the "
                            "tile grid)")
    if args.sr_truth and "sr_truth" not in kind.synth_options:
        raise JeopardaError(f"--sr-truth is for the {_layouts_taking('sr_truth')} layout")
    bar = Progress(args.patches, "synth")
    line = kind.load("writer")(args.out, SynthRequest(args.patches, args.seed, progress=bar.update, block=args.block,
                                                      sr_truth=args.sr_truth,
                                                      workers=args.workers or default_workers()))
    bar.close()
    print(line)
    return 0


def _layouts_taking(option: str) -> str:
    return " and ".join(k.layout for k in ARCHIVE_KINDS.values() if option in k.synth_options)


def _kinds_help(key: Callable[[ArchiveKind], str], width: int, text: Callable[[ArchiveKind], str],
                continuation: int) -> str:
    """One aligned paragraph per archive kind: its key, two spaces, its text (continued lines indented)."""
    return "\n".join(f"  {key(kind).ljust(width)}  " + text(kind).replace("\n", "\n" + " " * continuation)
                     for kind in ARCHIVE_KINDS.values())


def add_convert(sub: argparse._SubParsersAction) -> None:
    from jeoparda.resample import LEARNED, METHODS
    from jeoparda.shards.format import COMPRESSION

    p = sub.add_parser(
        "convert", help="convert a BigEarthNet archive (v1.0, v2.0, rico-hdl LMDB) into sharded HDF5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert an archive into sharded HDF5, format v2 (docs/data-format.md): every band\n"
        "at 10 m (120x120), uint16, canonical band order, 19-class labels, train-split band\n"
        "statistics and a SHA-256 per shard in OUT/manifest.json. The archive kind is detected:\n\n"
        + _kinds_help(lambda kind: kind.name, 14, lambda kind: kind.summary, continuation=18) + "\n\n"
        "v2.0: splits come from metadata.parquet; snow/cloud/shadow patches are left out unless\n"
        "--include-noisy; reference maps (Reference_Maps/ beside the tables, or --reference-maps)\n"
        "become per-pixel 'masks' (19 classes, 255 = none); --with-s1 adds Sentinel-1 VV, VH.\n\n"
        "Patches the lists name but the archive lacks: above 1 % of them the run stops, unless\n"
        "--present-only; the manifest counts them under 'missing'. Damaged patches are listed\n"
        "under 'rejected' and skipped (or end the run with --strict). An interrupted run resumes\n"
        "when started again with the same arguments. Under mpirun or srun every rank converts a\n"
        "disjoint share of the shards; the output is byte-identical whatever the number of ranks\n"
        "and workers.")
    p.add_argument("--source", type=Path, required=True,
                   help="the archive folder (for v1.0: BigEarthNet-v1.0 or the folder holding it; for "
                   "v2.0: the folder holding metadata.parquet)")
    p.add_argument("--format", choices=("auto", *ARCHIVE_KINDS),
                   default="auto", help="archive kind (default: detected)")
    p.add_argument("--with-s1", action="store_true",
                   help="v2.0: store Sentinel-1 VV, VH (dB) as 's1' beside the optical bands")
    p.add_argument("--reference-maps", type=Path, metavar="DIR",
                   help="v2.0: a Reference_Maps/ tree (default: SOURCE/Reference_Maps if present)")
    p.add_argument("--include-noisy", action="store_true",
                   help="v2.0: also convert the patches with seasonal snow, cloud or shadow")
    p.add_argument("--bands", type=lambda s: tuple(b.strip() for b in s.split(",") if b.strip()), default=(),
                   metavar="B01,B02,...", help="store only these bands (canonical order kept), e.g. EuroSAT's 13 "
                   "down to BigEarthNet's 12: B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B12")
    p.add_argument("--present-only", action="store_true",
                   help="convert the listed patches that are present even when more than 1 %% are absent")
    p.add_argument("--out", type=Path, required=True, help="output folder for shards and manifest")
    p.add_argument("--splits", type=Path, dest="splits_dir", metavar="DIR",
                   help="folder with train.csv, val.csv, test.csv (v1.0 default: SOURCE/splits if it "
                   "exists, else a 70/15/15 split by hash of the patch name; v2.0 default: the "
                   "split column of metadata.parquet; EuroSAT: eurosat-{train,val,test}.txt, default a "
                   "class-stratified 70/20/10 split)")
    p.add_argument("--exclude", type=Path, action="append", default=[], metavar="CSV",
                   help="v1.0: list of patches to leave out (repeatable: the seasonal-snow and "
                   "cloud-and-shadow lists)")
    p.add_argument("--shard-size", type=positive_int, default=1000, metavar="N",
                   help="patches per shard (default 1000, about 330 MB uncompressed)")
    p.add_argument("--resample", choices=(*METHODS, LEARNED), default="bicubic",
                   help="method for bringing 20 m and 60 m bands to 10 m (default bicubic; learned: a "
                   "super-resolution model, with --sr-model)")
    p.add_argument("--sr-model", type=Path, metavar="MODEL",
                   help="--resample learned: the model file (jeoparda sr train); its SHA-256 and evaluation "
                   "figures go into the manifest")
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="--resample learned: where the networks run: auto (cuda where a GPU is visible, else "
                   "cpu), cpu or cuda. Batches of 16 patches; on a CPU one thread per worker, so use --workers "
                   "(default auto)")
    p.add_argument("--compression", choices=list(COMPRESSION), default="none",
                   help="HDF5 compression of the images (default none; lzf is fast, gzip small)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes on this node (per MPI rank; default 1)")
    p.add_argument("--strict", action="store_true", help="stop at the first damaged patch (exit 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing, different data set in OUT")
    p.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from jeoparda.cluster.env import detect
    from jeoparda.convert.plan import ConvertOptions, noisy_list_hint
    from jeoparda.convert.run import run_conversion
    from jeoparda.progress import Progress

    env = detect()
    opts = ConvertOptions(source=args.source, out=args.out, splits_dir=args.splits_dir,
                          excludes=tuple(args.exclude), shard_size=args.shard_size,
                          resample=args.resample, compression=args.compression,
                          workers=args.workers, strict=args.strict, overwrite=args.overwrite,
                          format=args.format, with_s1=args.with_s1, reference_maps=args.reference_maps,
                          include_noisy=args.include_noisy, present_only=args.present_only, bands=args.bands,
                          sr_model=args.sr_model, sr_device=args.device)
    if env.is_root:
        for path in noisy_list_hint(opts):
            warnings.warn(f"{path} exists but no --exclude was given; its patches are converted", stacklevel=2)
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
    print(f"source: {manifest['source']['kind']}; tasks: {', '.join(manifest['tasks'])}"
          + ("; with Sentinel-1" if manifest.get("s1_bands") else ""))
    print(f"rejected {len(rejected)} damaged patches, excluded {len(manifest['excluded'])} noisy patches")
    missing = manifest["missing"]
    if missing["count"]:
        print(f"missing {missing['count']} listed patches absent from the source (first: {missing['first'][0]})")
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
    from jeoparda.progress import Progress
    from jeoparda.shards.inspect import summary_lines, verify_dataset
    from jeoparda.shards.manifest import read_manifest

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
