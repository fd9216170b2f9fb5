"""``jeoparda bench loader|train|infer|io|allreduce``: benchmarks of the suite's parts."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jeoparda.backend_tables import DATA_BACKENDS, DIST_BACKENDS
from jeoparda.cli.bench_io import add_io
from jeoparda.cli.common import add_config_args, add_max_memory, non_negative_int, positive_int, run_config

if TYPE_CHECKING:
    from jeoparda.config import RunConfig


def add_bench(sub: argparse._SubParsersAction) -> None:
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
        "steps, ...). Under mpirun/srun every rank runs its share; rank 0 prints. The pipeline is "
        "configured as for jeoparda train (--config/--set: data.* and train.batch_size); the flags "
        "below, where given, override those keys.")
    add_config_args(lo)
    lo.add_argument("--data", type=Path, default=None,
                    help="converted data set, data.path (optional for synthetic)")
    lo.add_argument("--split", default="train", help="split to read (default train)")
    lo.add_argument("--backend", choices=list(DATA_BACKENDS), default=None,
                    help="data.backend (default torch)")
    lo.add_argument("--batch-size", type=positive_int, default=None, help="per worker, train.batch_size (default 32)")
    lo.add_argument("--steps", type=positive_int, default=50, help="timed steps (default 50)")
    lo.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    lo.add_argument("--workers", type=int, default=None,
                    help="data.workers: reader processes (torch) or CPU threads (dali); default 2")
    lo.add_argument("--no-augment", action="store_true", help="switch flips and rotations off")
    lo.add_argument("--stage", metavar="DIR", help="stage shards to node-local DIR first (data.stage, data.stage_dir)")
    lo.add_argument("--json", action="store_true", help="end with one JSON line")
    lo.set_defaults(func=_run_bench_loader)
    tr = bench.add_parser(
        "train", help="training throughput over timed blocks, with a 95 %% interval",
        description="Training throughput of a configuration (same --config/--set as jeoparda train; "
        "data.backend=synthetic separates compute and communication from I/O): warm-up steps, then "
        "timed blocks of steps; images/s in total and per worker with a 95 % interval (+-1.96 std "
        "over blocks), and time per step split into data wait, compute and exposed communication, "
        "with a verdict on the bottleneck (data, communication or compute) and what to try; achieved "
        "TFLOP/s per worker and MFU where the device's peak is known (docs/benchmarking.md). "
        "Writes RUN_DIR/results.jsonl in the training schema (one epoch record per block).")
    add_config_args(tr)
    tr.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (default runs/<model>-<id>)")
    tr.add_argument("--warmup-steps", type=positive_int, default=5, help="untimed steps (default 5)")
    tr.add_argument("--steps", type=positive_int, default=10, help="steps per timed block (default 10)")
    tr.add_argument("--blocks", type=positive_int, default=5, help="timed blocks (default 5)")
    tr.add_argument("--json", action="store_true", help="end with one JSON line")
    tr.set_defaults(func=_run_bench_train)
    inf = bench.add_parser(
        "infer", help="dense inference: an FCN in one pass vs patch-based, on a mosaic of N x N patches",
        description="Label a random mosaic of N x N 120x120 patches with a dense model (jeoparda models: kind "
        "dense) in one pass, and patch-based: every WINDOW x WINDOW output window inferred from its own "
        "CONTEXT x CONTEXT crop (the patch-based baseline of Maggiori et al.). Prints seconds and pixels/s of "
        "both and the ratio; times are the best of --repeat alternated runs. Weights are random (timing "
        "only) unless --checkpoint gives a trained model.")
    inf.add_argument("--model", default="fcn_maggiori", help="a dense model (default fcn_maggiori)")
    inf.add_argument("--checkpoint", type=Path, help="a jeoparda checkpoint of that model")
    inf.add_argument("--patches", type=positive_int, default=10, help="mosaic side in patches (default 10)")
    inf.add_argument("--window", type=positive_int, default=24, help="patch-based output window (default 24)")
    inf.add_argument("--context", type=positive_int, default=72, help="patch-based input crop (default 72)")
    inf.add_argument("--batch", type=non_negative_int, default=0,
                     help="crops per patch-based model call (default 0: as many as --max-memory holds, the rule "
                     "jeoparda predict batches its windows by)")
    add_max_memory(inf, "sets the patch-based batch")
    inf.add_argument("--repeat", type=positive_int, default=2, help="alternated runs, best kept (default 2)")
    inf.add_argument("--device", default="auto",
                     help="auto (the first visible GPU, else the CPU), cpu, cuda or cuda:N (default auto)")
    inf.add_argument("--json", action="store_true", help="end with one JSON line")
    inf.set_defaults(func=_run_bench_infer)
    add_io(bench)
    ar = bench.add_parser(
        "allreduce", help="all-reduce time and bus bandwidth over message sizes",
        description="Time all-reduce of float32 messages from 4 KiB up to --max-bytes (default: "
        "the gradient size of ResNet50, about 94 MB) with the chosen backend, as nccl-tests reports "
        "it: median time, algorithm bandwidth (bytes/time) and bus bandwidth (algbw x 2(n-1)/n). "
        "Run it under mpirun/srun/torchrun; rank 0 prints. It feeds the scaling projection.")
    # single has no peers to reduce with
    ar.add_argument("--backend", choices=[b for b in DIST_BACKENDS if b != "single"], default="ddp",
                    help="default ddp")
    ar.add_argument("--max-bytes", type=positive_int, default=0, help="largest message (default ResNet50 gradients)")
    ar.add_argument("--iters", type=positive_int, default=20, help="timed calls per size (default 20)")
    ar.add_argument("--json", action="store_true", help="end with one JSON line")
    ar.set_defaults(func=_run_bench_allreduce)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def loader_config(args: argparse.Namespace) -> RunConfig:
    """The configuration of ``bench loader``: --config/--set, then the flags that were given."""

    cfg = run_config(args)
    data: dict[str, Any] = {key: value for key, value in (("path", args.data and str(args.data)),
                                                          ("backend", args.backend), ("workers", args.workers))
                            if value is not None}
    if args.no_augment:
        data["augment"] = replace(cfg.data.augment, flip=False, rot90=False)
    if args.stage:
        data.update(stage=True, stage_dir=args.stage)
    train = replace(cfg.train, batch_size=args.batch_size) if args.batch_size else cfg.train
    return replace(cfg, data=replace(cfg.data, **data), train=train)


def _run_bench_loader(args: argparse.Namespace) -> int:
    import json

    from jeoparda.bench.loader_bench import run
    from jeoparda.cluster.env import detect

    cfg = loader_config(args)
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
    from jeoparda.cluster.env import detect
    from jeoparda.training.bottleneck import SPLIT_KEYS
    from jeoparda.training.recorder import compute_line, perf_line

    cfg = run_config(args)
    result = bench_train(cfg, args.out, args.warmup_steps, args.steps, args.blocks)
    if detect().is_root:
        low, high = result["images_per_s_95"]
        split = (f"data wait {1e3 * result['data_wait_s']:.1f} ms, compute {1e3 * result['compute_s']:.1f} ms, "
                 f"communication {1e3 * result['communication_s']:.1f} ms" if result["compute_s"] is not None
                 else f"data wait {1e3 * result['data_wait_s']:.1f} ms")
        print(f"{cfg.model}, {result['world_size']} worker(s), batch {result['batch_size_per_worker']}/worker: "
              f"{result['images_per_s']:.1f} images/s (95 % {low:.1f}-{high:.1f}), "
              f"{result['images_per_s_per_worker']:.1f} per worker; per step {1e3 * result['step_s']:.1f} ms: {split}")
        print(perf_line("bench", images_per_s=float(result["images_per_s"]),
                        images_per_s_per_worker=float(result["images_per_s_per_worker"]),
                        step_time_s=float(result["step_s"])))
        parts = {k: result[k] for k in SPLIT_KEYS}
        print(f"bottleneck: {result['bottleneck_note']}")
        print(compute_line(result, {"step_split": parts, "bottleneck": result["bottleneck"]}))
        if args.json:
            print(json.dumps(result))
    return 0


def _run_bench_allreduce(args: argparse.Namespace) -> int:
    import json

    from jeoparda.bench.allreduce_bench import message_sizes, run
    from jeoparda.cluster.backends import create_backend
    from jeoparda.cluster.env import detect
    from jeoparda.config import DistConfig
    from jeoparda.devices import bind_gpu, collectives
    from jeoparda.models.complexity import gradient_bytes

    env = detect()
    backend = create_backend(env, DistConfig(backend=args.backend), collectives())
    try:
        accel = bind_gpu(env, backend.gather_objects)
        backend.bind(accel.device)
        rows = run(backend, message_sizes(args.max_bytes or gradient_bytes()), args.iters, accel=accel)
    finally:
        backend.shutdown()
    if env.is_root:
        print(f"all-reduce, {backend.name}, {env.world_size} processes, {accel.kind}")
        print(f"{'bytes':>12}{'time (us)':>14}{'algbw (GB/s)':>14}{'busbw (GB/s)':>14}")
        for r in rows:
            print(f"{r['bytes']:>12}{r['time_us']:>14.1f}{r['algbw_gb_s']:>14.3f}{r['busbw_gb_s']:>14.3f}")
        if args.json:
            print(json.dumps({"backend": backend.name, "world_size": env.world_size, "device": accel.kind,
                              "sizes": rows}))
    return 0


def _run_bench_infer(args: argparse.Namespace) -> int:
    import json

    from jeoparda.bench.infer_bench import run
    from jeoparda.devices import parse_device
    from jeoparda.errors import JeopardaError
    from jeoparda.models import create_model, load_trained, model_kind

    if model_kind(args.model) != "dense":
        raise JeopardaError(f"bench infer: {args.model} is a classification model; choose a dense one "
                            "(jeoparda models)")
    if args.checkpoint:
        trained = load_trained(args.checkpoint, name=args.model)
        model, in_chans = trained.model, trained.in_chans
    else:
        model, in_chans = create_model(args.model), 12
    try:
        result = run(model, args.patches, parse_device(args.device), args.window, args.context, args.batch,
                     in_chans=in_chans, repeat=args.repeat, max_memory=args.max_memory)
    except ValueError as exc:
        raise JeopardaError(f"bench infer: {exc}") from None
    print(f"{args.model}, {args.patches}x{args.patches} patches ({result['pixels']:,} pixels) on {result['device']}: "
          f"FCN {result['fcn_s']:.2f} s ({result['fcn_pixels_per_s']:,.0f} px/s), patch-based "
          f"{result['patch_s']:.2f} s ({result['patch_pixels_per_s']:,.0f} px/s, {result['batch']} crops per call): "
          f"FCN {result['speedup']:.1f}x faster")
    if args.json:
        print(json.dumps(result))
    return 0
