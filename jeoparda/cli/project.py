"""``jeoparda project``: predicted epoch time and efficiency from 1 to 1,024 GPUs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from jeoparda.cli.common import positive_int

HELP = """\
Predict epoch time, throughput and scaling efficiency for 1 to --max-gpus GPUs from a measured
single-worker step and an interconnect model.

The step model (per GPU, b images):
  t_step(p) = t_data + t_compute + t_exposed(p)
  t_compute, t_data: measured on one worker (--from RUN, or --step-time/--data-wait), linear in b
  gradients S = 4 bytes x parameters, all-reduced in k = ceil(S / bucket) buckets (DDP: 25 MiB)
  C = k T(p, S/k);  t_exposed = max(T(p, S/k), C - overlap x backward_fraction x t_compute)
  (communication hides behind backward except the last bucket; t_exposed = 0 on one GPU)

The all-reduce model, p GPUs on n nodes of g GPUs, latency a per hop, bus bandwidth B
(B = intra-node bandwidth on one node, else min(intra-node, network bandwidth per node)):
  ring: T = 2(p-1) a + 2(p-1)/p S/B   (a = a_intra on one node, else a_inter; bandwidth-optimal)
  tree: T = 2[(g-1) a_intra + ceil(log2 n) a_inter] + 2 S/B (logarithmic latency across nodes)
  auto: the faster of the two (as NCCL's tuner picks)

Scaling: weak (batch per GPU fixed) E(p) = t_step(1)/t_step(p); strong (--global-batch B fixed,
b = B/p) E(p) = t_step(1)/(p t_step(p)). Epoch time = floor(images / global batch) x t_step.

Systems (--system; sustained bandwidths assumed at about 85-90 %% of nominal link rates,
documented in docs/benchmarking.md; --list-systems prints them): v100-edr, a100-hdr200,
h100-ndr400. Or fit your own: --allreduce FILE with the output of
`jeoparda bench allreduce --json` (a one-node fit; add --node-bandwidth-gbs and
--inter-latency-us for the network). Writes OUT/projection.json and OUT/projection.csv with
--out; `jeoparda report --projection OUT/projection.json` puts it next to measurements.
"""


def add_project(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="project epoch time and efficiency to 1,024 GPUs (interconnect model)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("measured step (one of)")
    src.add_argument("--from", dest="run", type=Path, metavar="RUN",
                     help="run folder or results.jsonl of jeoparda train / bench train (1 worker is best)")
    src.add_argument("--step-time", type=float, metavar="S", help="compute seconds per step on one GPU")
    src.add_argument("--batch-size", type=positive_int, help="images per GPU of --step-time")
    src.add_argument("--model", default="resnet50", help="model for the gradient size (default resnet50)")
    src.add_argument("--data-wait", type=float, default=0.0, metavar="S", help="data wait per step (default 0)")
    net = p.add_argument_group("interconnect")
    net.add_argument("--system", help="preset: v100-edr, a100-hdr200 (default), h100-ndr400")
    net.add_argument("--allreduce", type=Path, metavar="FILE", help="bench allreduce --json output to fit")
    net.add_argument("--gpus-per-node", type=positive_int)
    net.add_argument("--intra-latency-us", type=float)
    net.add_argument("--intra-bandwidth-gbs", type=float, help="intra-node bus bandwidth, GB/s")
    net.add_argument("--inter-latency-us", type=float)
    net.add_argument("--node-bandwidth-gbs", type=float, help="network bandwidth per node, GB/s")
    net.add_argument("--algorithm", choices=["ring", "tree", "auto"], default="auto")
    net.add_argument("--list-systems", action="store_true", help="print the presets and exit")
    mod = p.add_argument_group("step model")
    mod.add_argument("--mode", choices=["weak", "strong"], default="weak", help="default weak")
    mod.add_argument("--global-batch", type=positive_int, help="global batch for strong scaling")
    mod.add_argument("--overlap", type=float, default=1.0, help="0 none .. 1 full overlap with backward (default 1)")
    mod.add_argument("--backward-fraction", type=float, default=2 / 3, help="backward share of compute (default 2/3)")
    mod.add_argument("--bucket-mb", type=float, default=25.0, help="gradient bucket, MiB (default 25)")
    mod.add_argument("--train-images", type=positive_int, default=None,
                     help="images per epoch (default 269,695: the BigEarthNet-S2 train split)")
    mod.add_argument("--max-gpus", type=positive_int, default=1024, help="powers of two up to this (default 1024)")
    mod.add_argument("--gpus", help="comma-separated world sizes instead of powers of two")
    p.add_argument("--out", type=Path, help="write OUT/projection.json and OUT/projection.csv")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.set_defaults(func=run_project)


def _system(args: argparse.Namespace):
    from jeoparda.errors import JeopardaError
    from jeoparda.report.interconnect import fit_measured, preset, with_overrides

    if args.allreduce and args.system:
        raise JeopardaError("give --system or --allreduce, not both")
    if args.allreduce:
        try:
            lines = [ln for ln in args.allreduce.read_text(encoding="utf-8").splitlines() if ln.strip()]
            doc = json.loads(lines[-1])
            system = fit_measured(doc["sizes"], int(doc["world_size"]))
        except (OSError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise JeopardaError(f"{args.allreduce}: not the output of `jeoparda bench allreduce --json` "
                                f"({exc})") from None
    else:
        system = preset(args.system or "a100-hdr200")
    us, gb = (lambda v: None if v is None else v * 1e-6), (lambda v: None if v is None else v * 1e9)
    return with_overrides(system, gpus_per_node=args.gpus_per_node, intra_latency_s=us(args.intra_latency_us),
                          intra_bandwidth=gb(args.intra_bandwidth_gbs), inter_latency_s=us(args.inter_latency_us),
                          node_bandwidth=gb(args.node_bandwidth_gbs))


def _workload(args: argparse.Namespace):
    from jeoparda.errors import JeopardaError
    from jeoparda.models.complexity import gradient_bytes
    from jeoparda.report.projection import Workload, workload_from_run

    if args.run:
        return workload_from_run(args.run)
    if args.step_time is None or args.batch_size is None:
        raise JeopardaError("give --from RUN, or --step-time and --batch-size (and --model)")
    from jeoparda.models import list_models

    if args.model not in {m.name for m in list_models()}:
        raise JeopardaError(f"unknown model {args.model!r}; see `jeoparda models`")
    return Workload(args.model, args.batch_size, args.step_time, args.data_wait, gradient_bytes(args.model),
                    "command line")


def _world_sizes(args: argparse.Namespace) -> list[int]:
    from jeoparda.errors import JeopardaError

    if args.gpus:
        try:
            sizes = [int(v) for v in args.gpus.split(",")]
        except ValueError:
            raise JeopardaError(f"--gpus: expected comma-separated integers, got {args.gpus!r}") from None
        if min(sizes) < 1:
            raise JeopardaError("--gpus: world sizes must be at least 1")
        return sizes
    return [2**i for i in range(args.max_gpus.bit_length()) if 2**i <= args.max_gpus]


def run_project(args: argparse.Namespace) -> int:
    from jeoparda.report.interconnect import PRESETS
    from jeoparda.report.projection import BIGEARTHNET_TRAIN_IMAGES, ModelOptions, project, write_projection

    if args.list_systems:
        for s in PRESETS.values():
            print(f"{s.name}: {s.description}; per-hop latency {s.intra_latency_s * 1e6:g} us in a node, "
                  f"{s.inter_latency_s * 1e6:g} us across nodes")
        return 0
    system, work = _system(args), _workload(args)
    opts = ModelOptions(mode=args.mode, global_batch=args.global_batch, overlap=args.overlap,
                        backward_fraction=args.backward_fraction, bucket_bytes=int(args.bucket_mb * 2**20),
                        algorithm=args.algorithm, train_images=args.train_images or BIGEARTHNET_TRAIN_IMAGES)
    rows = project(work, system, _world_sizes(args), opts)
    print(f"{work.model}, {opts.mode} scaling, {system.name} ({system.gpus_per_node} workers/node): measured "
          f"{work.compute_s * 1e3:.1f} ms compute + {work.data_wait_s * 1e3:.1f} ms data per step at batch "
          f"{work.batch_size}, gradients {work.gradient_bytes / 1e6:.1f} MB")
    print(f"{'workers':>8}{'nodes':>6}{'batch each':>11}{'step (ms)':>11}{'comm (ms)':>11}{'exposed':>9}"
          f"{'images/s':>12}{'epoch (s)':>11}{'efficiency':>11}")
    for r in rows:
        epoch = "-" if r["epoch_time_s"] is None else f"{r['epoch_time_s']:.1f}"
        print(f"{r['world_size']:>8}{r['nodes']:>6}{r['batch_per_gpu']:>11.4g}{r['step_time_s'] * 1e3:>11.1f}"
              f"{r['allreduce_s'] * 1e3:>11.1f}{r['exposed_comm_s'] * 1e3:>9.1f}{r['images_per_s']:>12.1f}"
              f"{epoch:>11}{100 * r['efficiency']:>10.1f}%")
    if args.out:
        print(f"wrote {write_projection(args.out, work, system, opts, rows)} and projection.csv")
    if args.json:
        print(json.dumps({"model": work.model, "mode": opts.mode, "system": system.as_dict(), "rows": rows}))
    return 0
