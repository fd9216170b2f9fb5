"""``jeoparda bench io``: the storage in training's access pattern (jeoparda.bench.io_bench)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from jeoparda.cli.common import add_config_args, non_negative_int, positive_float, positive_int, run_config
from jeoparda.errors import JeopardaError


def add_io(bench: argparse._SubParsersAction) -> None:
    io = bench.add_parser(
        "io", help="GB/s and images/s of the storage, read as training reads it (no model)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read a converted data set exactly as jeoparda train would (the same split, partition\n"
        "over ranks, shuffle blocks, batch and reader processes; data.* and train.batch_size from\n"
        "--config/--set) but decode nothing beyond the uint16 arrays and run no model. Under mpirun or\n"
        "srun every rank reads its share. Per pass: images/s and GB/s in total, per node and per rank,\n"
        "and the time to the first batch; start-up (manifest, checksums, readers) apart.\n\n"
        "--cold drops the pages of every file a node's ranks will read from the page cache before each\n"
        "pass (posix_fadvise DONTNEED: no root needed) and checks they went, then reads the same epoch\n"
        "again: the cold figure is the file system's; the second, where the data fits in memory, the\n"
        "page cache's. A file system that keeps the pages (tmpfs) is reported warm only, with a\n"
        "warning. Without --cold the passes read the cache as found, and each says how much of the\n"
        "data was cached before it.\n\n"
        "Writes RUN_DIR/results.jsonl (training schema, job io) for jeoparda report's I/O section.\n"
        "Method and limits (a data set smaller than memory; MLPerf Storage's 5x rule): docs/benchmarking.md.")
    add_config_args(io)
    io.add_argument("--data", type=Path, help="converted data set (data.path)")
    io.add_argument("--split", default="train", help="split to read (default train)")
    io.add_argument("--passes", type=positive_int, default=2, help="passes, each one epoch's shuffle (default 2)")
    io.add_argument("--cold", action="store_true", help="drop the shards' pages before each pass (see above)")
    io.add_argument("--stage", metavar="DIR", nargs="?", const="", default=None,
                    help="also stage the shards to node-local DIR (default data.stage_dir, else $TMPDIR), timed, "
                    "then run the same passes on the copy")
    io.add_argument("--batch-size", type=positive_int, help="per rank, train.batch_size (default 32)")
    io.add_argument("--workers", type=non_negative_int,
                    help="data.workers: reader processes per rank (default 2; 0: the rank)")
    need = io.add_mutually_exclusive_group()
    need.add_argument("--need-images-per-s", type=positive_float, metavar="X",
                      help="images/s training needs (all ranks): say whether the storage keeps up")
    need.add_argument("--need-from", type=Path, metavar="RUN_DIR",
                      help="take that figure from a jeoparda train or bench train run (its median images/s)")
    io.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (default runs/io-<id>)")
    io.add_argument("--json", action="store_true", help="end with one JSON line (rank 0)")
    io.set_defaults(func=_run_bench_io)


def _need(args: argparse.Namespace) -> tuple[float | None, str]:
    """The images/s to keep up with, and where it comes from."""
    if args.need_images_per_s is not None:
        return args.need_images_per_s, "--need-images-per-s"
    if args.need_from is None:
        return None, ""
    from jeoparda.report.scaling import SCALED_JOBS, Run
    from jeoparda.training.records import LogError, read_log

    try:
        log = read_log(args.need_from)
    except LogError as exc:
        raise JeopardaError(f"--need-from: {exc}") from None
    if log.start.job not in SCALED_JOBS or not log.epochs:
        raise JeopardaError(f"--need-from {args.need_from}: not a training run with timed epochs "
                            f"(job {log.start.job}, {len(log.epochs)} epochs)")
    run = Run(log.path, log.start, log.epochs, log.end)  # the report's rule: the epochs after the first
    return run.steady("images_per_s"), (f"{args.need_from}: {log.start.model}, {log.start.world_size} worker(s) of "
                                        f"batch {log.start.batch_size_per_worker}, median of "
                                        f"{len(run.steady_epochs)} epoch(s)")


def _run_bench_io(args: argparse.Namespace) -> int:
    import json

    from jeoparda.bench.io_bench import IoOptions, bench_io
    from jeoparda.cluster.env import detect
    from jeoparda.training.recorder import perf_line

    cfg = run_config(args)
    data: dict[str, Any] = {k: v for k, v in (("path", args.data and str(args.data)), ("workers", args.workers))
                            if v is not None}
    train = replace(cfg.train, batch_size=args.batch_size) if args.batch_size else cfg.train
    cfg = replace(cfg, data=replace(cfg.data, **data), train=train)
    need, source = _need(args)
    opts = IoOptions(args.split, args.passes, args.cold, args.stage, need, source)
    summary = bench_io(cfg, opts, args.out)
    if not detect().is_root:
        return 0
    print(summary["memory_note"])
    if "need" in summary:
        print(summary["need"]["note"])
    direct = summary["figures"].get("direct", {})
    fields = {f"{kind.replace(' ', '_')}_{key}": float(found[key]) for kind, found in direct.items()
              for key in ("images_per_s", "gb_per_s")}
    print(perf_line("io", world_size=summary["world_size"], **fields))
    print(f"results: {summary['run_dir']}/results.jsonl")
    if args.json:
        print(json.dumps(summary))
    return 0
