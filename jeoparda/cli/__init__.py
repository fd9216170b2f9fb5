"""The ``jeoparda`` command: subcommands parse their arguments and call library code."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from jeoparda import __version__
from jeoparda.cli import bench, config, data, download, predict, project, superres, train
from jeoparda.errors import JeopardaError, os_error_line

DESCRIPTION = """\
jeoparda: distributed deep-learning benchmarks on Sentinel-2 (BigEarthNet) for HPC systems.

Typical flow:
  jeoparda download bigearthnet-v2 --out ARCHIVE  # the published archive, verified and unpacked
  jeoparda synth --out ARCHIVE --patches 600        # or use the real BigEarthNet-S2 archive
  jeoparda convert --source ARCHIVE --out DATA      # archive -> sharded 12-band HDF5
  jeoparda inspect DATA                             # summary and checksum verification
  jeoparda train --config benchmarks/configs/resnet18.yaml --set data.path=DATA
  jeoparda models                                   # the model zoo, parameters and FLOPs
  jeoparda report 'runs/*' --out REPORT             # scaling report over runs at several scales
  jeoparda project --from RUN --system a100-hdr200  # projected scaling to 1,024 GPUs
  jeoparda predict --checkpoint CKPT --data DATA --tile TILE --out map.tif  # FCN: a tile as a class map
  jeoparda sr train --data ARCHIVE --out sr.pt      # learned 20/60 m -> 10 m (then convert --resample learned)
  jeoparda config get dist.backend --config FILE    # one value of the resolved configuration
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jeoparda", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"jeoparda {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    download.add_download(sub)
    data.add_synth(sub)
    data.add_convert(sub)
    data.add_inspect(sub)
    train.add_train(sub)
    train.add_report(sub)
    train.add_models(sub)
    bench.add_bench(sub)
    predict.add_predict(sub)
    project.add_project(sub)
    superres.add_sr(sub)
    config.add_config(sub)
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
        print(f"jeoparda: error: {os_error_line(exc, args.command)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jeoparda: interrupted", file=sys.stderr)
        return 130
