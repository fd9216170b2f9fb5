"""``jeoparda train``, ``report`` and ``models``."""
from __future__ import annotations

import argparse
from pathlib import Path

from jeoparda.cli.common import add_config_args, positive_int, run_config

#: The recipes in benchmarks/configs/ (a test keeps this list and the folder the same).
RECIPES = ("resnet18.yaml", "resnet18_jeoparda.yaml", "resnet50.yaml", "bwms.yaml", "fcn_bigearthnet.yaml",
           "eurosat_resnet18.yaml", "eurosat_resnet50d.yaml")


def add_train(sub: argparse._SubParsersAction) -> None:
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
        "Shipped recipes (docs/training.md), in benchmarks/configs/:\n  " + ", ".join(RECIPES))
    add_config_args(p)
    p.add_argument("--out", type=Path, metavar="RUN_DIR",
                   help="run folder (default runs/<model>-<Slurm job id or time stamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--resume-if-checkpoint", action="store_true",
                   help="continue from the newest checkpoint in RUN_DIR if there is one, else start there "
                   "(the Slurm scripts pass it after a requeue; without --out, RUN_DIR is runs/<model>-<job id>)")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from jeoparda.training.launch import train

    cfg = run_config(args)
    return train(cfg, args.out, args.resume, if_checkpoint=args.resume_if_checkpoint)


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="turn runs at several scales into a scaling report",
        description="Read the results.jsonl of every run given (run folders, logs or globs), group "
        "them by model, scaling mode and data backend, and write OUT/scaling.csv, OUT/report.md, a "
        "self-contained OUT/report.html and PNG plots: throughput (median images/s after the first "
        "epoch), epoch time, speed-up and efficiency per world size, with final F1. Damaged logs are skipped "
        "with a warning; failed and "
        "preempted runs are listed, never used as data points.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, results logs or globs")
    p.add_argument("--out", type=Path, required=True, help="folder for the report")
    p.add_argument("--projection", type=Path, action="append", default=[], metavar="FILE",
                   help="projection.json from `jeoparda project --out` to show next to the measurements "
                   "(same model, mode and global batch; repeatable)")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from jeoparda.report.report import make_report

    rows, runs = make_report(args.runs, args.out, args.projection)
    print(f"{len(rows)} rows from {len(runs)} runs: {args.out / 'report.html'} (also report.md, "
          "scaling.csv and PNG plots)")
    return 0


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list the models with parameter counts and FLOPs",
        description="List every registered model with its parameter count and forward FLOPs for "
        "one 12x120x120 image (2 FLOPs per multiply-add), for --classes output classes.")
    p.add_argument("--classes", type=positive_int, default=19, help="output classes (default 19)")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from jeoparda.models import create_model, list_models
    from jeoparda.models.complexity import count_parameters, forward_flops

    print(f"{'model':<13}{'kind':<16}{'parameters':>12}{'GFLOPs':>9}  description")
    for entry in list_models():
        model = create_model(entry.name, in_chans=12, num_classes=args.classes)
        print(f"{entry.name:<13}{entry.kind:<16}{count_parameters(model):>12,}{forward_flops(model) / 1e9:>9.2f}  "
              f"{entry.summary}")
    return 0
