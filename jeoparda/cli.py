"""The ``jeoparda`` command: subcommands parse their arguments and call library code."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from jeoparda import __version__
from jeoparda.errors import JeopardaError

DESCRIPTION = """\
jeoparda: distributed deep-learning benchmarks on Sentinel-2 (BigEarthNet) for HPC systems.

Typical flow:
  jeoparda synth --out ARCHIVE --patches 600        # or use the real BigEarthNet-S2 archive
  jeoparda convert --source ARCHIVE --out DATA      # archive -> sharded 12-band HDF5
  jeoparda inspect DATA                             # summary and checksum verification
  jeoparda train --config benchmarks/configs/resnet18.yaml --set data.path=DATA
  jeoparda models                                   # the model zoo, parameters and FLOPs
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="write a synthetic archive in the BigEarthNet-S2 v1.0 layout",
        description="Write a synthetic archive in the BigEarthNet-S2 v1.0 layout: one uint16 "
        "GeoTIFF per band at native resolution (120/60/20 px), labels JSON, split CSVs in "
        "OUT/splits/ (50/25/25) and the two noisy-patch lists. Every label has a spectral "
        "signature and texture, so models can learn from it. Deterministic for a seed.")
    p.add_argument("--out", type=Path, required=True, help="folder to create the archive in")
    p.add_argument("--patches", type=_positive_int, required=True, help="number of patches")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from jeoparda.data.synth import synthesize
    from jeoparda.progress import Progress

    if args.out.exists() and any(args.out.iterdir()):
        raise JeopardaError(f"{args.out}: folder is not empty; choose a new folder")
    bar = Progress(args.patches, "synth")
    splits = synthesize(args.out, args.patches, args.seed, progress=bar.update)
    bar.close()
    print(f"wrote {args.patches} patches to {args.out} "
          f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])})")
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    from jeoparda.data.resample import METHODS
    from jeoparda.data.shards import COMPRESSION

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
    p.add_argument("--shard-size", type=_positive_int, default=1000, metavar="N",
                   help="patches per shard (default 1000, about 330 MB uncompressed)")
    p.add_argument("--resample", choices=METHODS, default="bicubic",
                   help="method for bringing 20 m and 60 m bands to 10 m (default bicubic)")
    p.add_argument("--compression", choices=list(COMPRESSION), default="none",
                   help="HDF5 compression of the images (default none; lzf is fast, gzip small)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="processes on this node (per MPI rank; default 1)")
    p.add_argument("--strict", action="store_true", help="stop at the first damaged patch (exit 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing, different data set in OUT")
    p.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from jeoparda.data.convert import run_conversion
    from jeoparda.data.convert_plan import ConvertOptions, noisy_list_hint
    from jeoparda.dist.env import detect
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


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="summarise a converted data set and verify its shards",
        description="Print patches per split, class frequencies, band statistics and the "
        "rejected/excluded counts of a converted data set, after verifying every shard's "
        "SHA-256 and format against the manifest. Exit status 1, naming the shard, on any "
        "mismatch.")
    p.add_argument("dataset", type=Path, metavar="OUT", help="a folder written by jeoparda convert")
    p.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from jeoparda.data.inspect import summary_lines, verify_dataset
    from jeoparda.data.manifest import read_manifest
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


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """--config and --set, as jeoparda train and jeoparda bench train take them."""
    p.add_argument("--config", type=Path, action="append", default=[], metavar="FILE",
                   help="YAML configuration (repeatable; later files override earlier ones)")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="override one key, e.g. train.batch_size=32 (repeatable)")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model data-parallel (alone, mpirun, srun or torchrun)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a model on a converted data set, data-parallel over every process the\n"
        "launcher started (mpirun, srun, torchrun, or none), on CPUs (gloo) or GPUs (NCCL).\n\n"
        "Configuration: the defaults, then each --config YAML file in order, then --set KEY=VALUE\n"
        "(e.g. --set train.epochs=4 --set data.path=DATA --set dist.backend=horovod). Unknown keys\n"
        "are errors. The resolved configuration, results.jsonl and checkpoints go to RUN_DIR.\n\n"
        "SIGTERM or SIGUSR1 (Slurm's warning before the time limit): finish the step, checkpoint,\n"
        "exit with status 75; `--resume` continues from the newest checkpoint.\n"
        "Shipped recipes: benchmarks/configs/{resnet18,resnet50,bwms}.yaml (docs/training.md).")
    _add_config_args(p)
    p.add_argument("--out", type=Path, metavar="RUN_DIR",
                   help="run folder (default runs/<model>-<Slurm job id or time stamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from jeoparda.config import load_config
    from jeoparda.training.launch import train

    cfg = load_config(args.config, args.overrides)
    return train(cfg, args.out, args.resume)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="turn runs at several scales into a scaling report",
        description="Read the results.jsonl of every run given (run folders, logs or globs), group "
        "them by model, scaling mode and data backend, and write OUT/scaling.csv, OUT/report.md, a "
        "self-contained OUT/report.html and PNG plots: throughput (median images/s after the first "
        "epoch), epoch time, speed-up and efficiency per world size, with final F1. Damaged logs are skipped with a warning; failed and "
        "preempted runs are listed, never used as data points.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, results logs or globs")
    p.add_argument("--out", type=Path, required=True, help="folder for the report")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from jeoparda.bench.report import make_report

    rows, runs = make_report(args.runs, args.out)
    print(f"{len(rows)} rows from {len(runs)} runs: {args.out / 'report.html'} (also report.md, "
          "scaling.csv and PNG plots)")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list the models with parameter counts and FLOPs",
        description="List every registered model with its parameter count and forward FLOPs for "
        "one 12x120x120 image (2 FLOPs per multiply-add), for --classes output classes.")
    p.add_argument("--classes", type=_positive_int, default=19, help="output classes (default 19)")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from jeoparda.models import create_model, list_models
    from jeoparda.models.complexity import count_parameters, forward_flops

    print(f"{'model':<11}{'parameters':>14}{'GFLOPs':>9}  description")
    for entry in list_models():
        model = create_model(entry.name, in_chans=12, num_classes=args.classes)
        print(f"{entry.name:<11}{count_parameters(model):>14,}{forward_flops(model) / 1e9:>9.2f}  "
              f"{entry.summary}")
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks: training throughput, the input pipeline alone, all-reduce bandwidth",
        description="Benchmarks of the suite's parts, run on their own so that I/O, compute and "
        "communication can be told apart. Each prints one readable line and, with --json, ends "
        "with one JSON object. `jeoparda bench loader` times the input pipeline without a model "
        "(any backend, under mpirun/srun on every rank); `jeoparda bench allreduce` times the "
        "all-reduce of the active backend over message sizes. Methodology and measured figures: "
        "docs/benchmarks.md.")
    bench = p.add_subparsers(dest="bench", metavar="BENCHMARK", help="what to measure")
    lo = bench.add_parser(
        "loader", help="images/s and MB/s of the input pipeline alone",
        description="Run the input pipeline alone (no model): warm-up steps, then timed steps, "
        "cycling epochs. Prints images/s and MB/s (raw shard bytes: 345,600 per patch). With "
        "--json the last line is one JSON object (images_per_s, mb_per_s, backend, batch_size, "
        "steps, ...). Under mpirun/srun every rank runs its share; rank 0 prints.")
    lo.add_argument("--data", type=Path, default=None, help="converted data set (optional for synthetic)")
    lo.add_argument("--split", default="train", help="split to read (default train)")
    lo.add_argument("--backend", choices=["torch", "dali", "synthetic"], default="torch")
    lo.add_argument("--batch-size", type=_positive_int, default=32, help="per worker (default 32)")
    lo.add_argument("--steps", type=_positive_int, default=50, help="timed steps (default 50)")
    lo.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    lo.add_argument("--workers", type=int, default=2,
                    help="reader processes (torch) or CPU threads (dali); default 2")
    lo.add_argument("--no-augment", action="store_true", help="switch flips and rotations off")
    lo.add_argument("--stage", metavar="DIR", help="stage shards to node-local DIR first")
    lo.add_argument("--json", action="store_true", help="end with one JSON line")
    lo.set_defaults(func=_run_bench_loader)
    tr = bench.add_parser(
        "train", help="training throughput over timed blocks, with a 95 %% interval",
        description="Training throughput of a configuration (same --config/--set as jeoparda train; "
        "data.backend=synthetic separates compute and communication from I/O): warm-up steps, then "
        "timed blocks of steps; images/s in total and per worker with a 95 % interval (+-1.96 std "
        "over blocks), and time per step split into data wait, compute and exposed communication. "
        "Writes RUN_DIR/results.jsonl in the training schema (one epoch record per block).")
    _add_config_args(tr)
    tr.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (default runs/<model>-<id>)")
    tr.add_argument("--warmup-steps", type=_positive_int, default=5, help="untimed steps (default 5)")
    tr.add_argument("--steps", type=_positive_int, default=10, help="steps per timed block (default 10)")
    tr.add_argument("--blocks", type=_positive_int, default=5, help="timed blocks (default 5)")
    tr.add_argument("--json", action="store_true", help="end with one JSON line")
    tr.set_defaults(func=_run_bench_train)
    ar = bench.add_parser(
        "allreduce", help="all-reduce time and bus bandwidth over message sizes",
        description="Time all-reduce of float32 messages from 4 KiB up to --max-bytes (default: "
        "the gradient size of ResNet50, about 94 MB) with the chosen backend, as nccl-tests reports "
        "it: median time, algorithm bandwidth (bytes/time) and bus bandwidth (algbw x 2(n-1)/n). "
        "Run it under mpirun/srun/torchrun; rank 0 prints. It feeds the scaling projection.")
    ar.add_argument("--backend", choices=["ddp", "horovod"], default="ddp", help="default ddp")
    ar.add_argument("--max-bytes", type=_positive_int, default=0, help="largest message (default ResNet50 gradients)")
    ar.add_argument("--iters", type=_positive_int, default=20, help="timed calls per size (default 20)")
    ar.add_argument("--json", action="store_true", help="end with one JSON line")
    ar.set_defaults(func=_run_bench_allreduce)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run_bench_loader(args: argparse.Namespace) -> int:
    import json

    from jeoparda.bench.loader_bench import run
    from jeoparda.config import AugmentConfig, DataConfig, RunConfig, TrainConfig
    from jeoparda.dist.env import detect

    aug = AugmentConfig(flip=False, rot90=False) if args.no_augment else AugmentConfig()
    cfg = RunConfig(data=DataConfig(path=str(args.data or ""), backend=args.backend,
                                    workers=args.workers, augment=aug, stage=bool(args.stage),
                                    stage_dir=args.stage or ""),
                    train=TrainConfig(batch_size=args.batch_size))
    env = detect()
    result = run(cfg, env, args.split, args.steps, args.warmup)
    if env.is_root:
        print(f"{result['backend']} loader, {result['split']} split, batch {result['batch_size']}, "
              f"{result['workers']} workers, {result['device']}: {result['images_per_s']:.1f} images/s, "
              f"{result['mb_per_s']:.1f} MB/s over {result['steps']} steps "
              f"(setup {result['build_s']:.2f} s, staging {result['stage_time_s']:.2f} s)")
        if args.json:
            print(json.dumps(result))
    return 0


def _run_bench_train(args: argparse.Namespace) -> int:
    import json

    from jeoparda.bench.train_bench import bench_train
    from jeoparda.config import load_config
    from jeoparda.dist.env import detect

    cfg = load_config(args.config, args.overrides)
    result = bench_train(cfg, args.out, args.warmup_steps, args.steps, args.blocks)
    if detect().is_root:
        low, high = result["images_per_s_95"]
        split = (f"data wait {1e3 * result['data_wait_s']:.1f} ms, compute {1e3 * result['compute_s']:.1f} ms, "
                 f"communication {1e3 * result['communication_s']:.1f} ms" if result["compute_s"] is not None
                 else f"data wait {1e3 * result['data_wait_s']:.1f} ms")
        print(f"{cfg.model}, {result['world_size']} worker(s), batch {result['batch_size_per_worker']}/worker: "
              f"{result['images_per_s']:.1f} images/s (95 % {low:.1f}-{high:.1f}), "
              f"{result['images_per_s_per_worker']:.1f} per worker; per step {1e3 * result['step_s']:.1f} ms: {split}")
        if args.json:
            print(json.dumps(result))
    return 0


def _run_bench_allreduce(args: argparse.Namespace) -> int:
    import json

    from jeoparda.bench.allreduce_bench import gradient_bytes, message_sizes, run
    from jeoparda.config import DistConfig
    from jeoparda.devices import default_device
    from jeoparda.dist.backends import create_backend
    from jeoparda.dist.env import detect

    env = detect()
    device = default_device(env)
    backend = create_backend(env, DistConfig(backend=args.backend), device)
    try:
        rows = run(backend, message_sizes(args.max_bytes or gradient_bytes()), args.iters)
    finally:
        backend.shutdown()
    if env.is_root:
        print(f"all-reduce, {backend.name}, {env.world_size} processes, {device.type}")
        print(f"{'bytes':>12}{'time (us)':>14}{'algbw (GB/s)':>14}{'busbw (GB/s)':>14}")
        for r in rows:
            print(f"{r['bytes']:>12}{r['time_us']:>14.1f}{r['algbw_gb_s']:>14.3f}{r['busbw_gb_s']:>14.3f}")
        if args.json:
            print(json.dumps({"backend": backend.name, "world_size": env.world_size, "device": device.type,
                              "sizes": rows}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jeoparda", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"jeoparda {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_synth(sub)
    _add_convert(sub)
    _add_inspect(sub)
    _add_train(sub)
    _add_report(sub)
    _add_models(sub)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; expected failures print one line and return a non-zero status."""
    warnings.formatwarning = lambda msg, *a, **k: f"jeoparda: warning: {msg}\n"
    # Our numpy work is many small matrices: BLAS threads only fight the worker processes.
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except JeopardaError as exc:
        if str(exc):
            print(f"jeoparda: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # file-system trouble: permissions, a file where a folder should be, full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"jeoparda: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jeoparda: interrupted", file=sys.stderr)
        return 130
