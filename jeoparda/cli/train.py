"""``jeoparda train``, ``report`` and ``models``."""
from __future__ import annotations

import argparse
from pathlib import Path

from jeoparda.cli.common import add_config_args, positive_int, run_config
from jeoparda.errors import JeopardaError
from jeoparda.report.baseline_file import DEFAULT_TOLERANCE, EXIT_REGRESSED

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
        "SIGTERM or SIGUSR1 (Slurm's warning before the time limit), in any phase: checkpoint where\n"
        "there is something to keep, exit with status 75; `--resume` continues from the newest\n"
        "checkpoint. RUN_DIR belongs to one run: a folder holding another run's files is refused\n"
        "unless --resume; each resumption's configuration is kept as config-resume-N.yaml.\n"
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
    # First thing: a preemption signal in any phase (even while torch is imported) is noted, not
    # fatal, and ends the run with status 75 (jeoparda/training/preempt.py imports no torch).
    from jeoparda.training.preempt import PreemptFlag, outlast_signals

    with PreemptFlag() as flag:
        from jeoparda.training.launch import train

        cfg = run_config(args)
        status = train(cfg, args.out, args.resume, if_checkpoint=args.resume_if_checkpoint, flag=flag)
    outlast_signals(flag)
    return status


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="turn runs at several scales and on several systems into a scaling report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read the results.jsonl of every run given (run folders, logs or globs), group them by\n"
        "system, model, scaling mode, data backend, task and data set, and write OUT/scaling.csv,\n"
        "OUT/summary.json, OUT/report.md, a self-contained OUT/report.html and PNG plots: a summary line\n"
        "per system and configuration; throughput (median images/s after the first epoch), epoch time,\n"
        "speed-up and efficiency per world size against each system's own smallest world size, with the\n"
        "task's quality, achieved TFLOP/s and MFU per worker where the logs allow; a side-by-side\n"
        "comparison with plots wherever a configuration ran on more than one system; each run's step\n"
        "split and bottleneck. Runs without a system name are grouped as \"unknown system\"; one system\n"
        "name over different GPU or CPU models is warned about and kept apart by hardware. Damaged logs\n"
        "are skipped with a warning; failed and preempted runs are listed, never used as data points.\n\n"
        "With --baseline (an earlier report's folder or summary.json, or a references file: format\n"
        "jeoparda-references, docs/benchmarking.md), every figure of every row is marked ok, regressed,\n"
        "improved or missing in the report (after the summary) and OUT/baseline.md, and each regressed\n"
        "figure is printed on one line.\n"
        "Rows the baseline does not cover and entries no row matches are listed, not failures.\n\n"
        "Exit status: 0 done; 1 bad input (one line naming the file and the entry); 3 with\n"
        "--fail-on-regression when any figure regressed beyond its tolerance, or with --fail-on-missing\n"
        "when a baseline entry or figure has nothing to compare with (for a nightly CI).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, results logs or globs")
    p.add_argument("--out", type=Path, required=True, help="folder for the report")
    p.add_argument("--projection", type=Path, action="append", default=[], metavar="FILE",
                   help="projection.json from `jeoparda project --out` to show next to the measurements "
                   "(same model, mode and global batch; repeatable)")
    p.add_argument("--baseline", type=Path, metavar="DIR_OR_FILE",
                   help="compare with an earlier report (its folder or summary.json) or a references file "
                   "(YAML or JSON); writes OUT/baseline.md")
    p.add_argument("--tolerance", type=fraction, default=DEFAULT_TOLERANCE, metavar="FRACTION",
                   help="relative band around an earlier report's figures and around references given "
                   f"without bounds (default {DEFAULT_TOLERANCE}: +-{100 * DEFAULT_TOLERANCE:g} %%)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help=f"exit with status {EXIT_REGRESSED} when a figure regressed beyond its tolerance "
                   "(needs --baseline)")
    p.add_argument("--fail-on-missing", action="store_true",
                   help=f"exit with status {EXIT_REGRESSED} also when a baseline entry or one of its figures has "
                   "nothing to compare with (tonight's run failed, a target no longer reached; needs --baseline)")
    p.set_defaults(func=_run_report)


def fraction(text: str) -> float:
    """argparse type: a finite number of at least 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a fraction of at least 0 (0.05: 5 %), got {text}")
    return value


def _run_report(args: argparse.Namespace) -> int:
    from jeoparda.report.baseline import compare, count_line, missing_lines, regression_lines
    from jeoparda.report.baseline_file import load_baseline
    from jeoparda.report.report import make_report
    from jeoparda.report.summary import summary_doc

    for flag, given in (("--fail-on-regression", args.fail_on_regression), ("--fail-on-missing", args.fail_on_missing)):
        if given and args.baseline is None:
            raise JeopardaError(f"{flag} needs --baseline (an earlier report or a references file)")
    # Read the baseline first: a bad file is refused before anything is written.
    baseline = load_baseline(args.baseline, args.tolerance) if args.baseline is not None else None
    rows, runs = make_report(args.runs, args.out, args.projection, baseline)
    print(f"{len(rows)} rows from {len(runs)} runs: {args.out / 'report.html'} (also report.md, "
          "summary.json, scaling.csv and PNG plots)")
    if baseline is None:
        return 0
    checks = compare(summary_doc(rows), baseline)  # as the report's baseline section and OUT/baseline.md
    for line in regression_lines(checks, baseline.source):
        print(line)
    print(f"{count_line(checks, baseline.source)}: {args.out / 'baseline.md'}")
    regressed = args.fail_on_regression and any(c.verdict == "regressed" for c in checks)
    missing = missing_lines(checks, baseline.source) if args.fail_on_missing else []
    for line in missing:
        print(line)
    return EXIT_REGRESSED if regressed or missing else 0


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
