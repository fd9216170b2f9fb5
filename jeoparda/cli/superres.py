"""``jeoparda sr train`` and ``jeoparda sr eval``: learned super-resolution of the 20 m and 60 m bands."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from jeoparda.backend_tables import DIST_BACKENDS
from jeoparda.cli.common import positive_int
from jeoparda.errors import JeopardaError

DATA_HELP = ("a converted data set (its bands are un-interpolated by least squares) or an archive "
             "(BigEarthNet v1.0 or v2.0, GeoTIFF or LMDB)")


def add_sr(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sr", help="learned super-resolution of the 20 m and 60 m bands (train, eval)",
                       description="DSen2-style networks that sharpen the 20 m and 60 m bands with the 10 m "
                       "bands as guide, trained self-supervised by Wald's protocol (docs/superres.md). "
                       "Use a trained model with `jeoparda convert --resample learned --sr-model MODEL`.")
    actions = p.add_subparsers(dest="sr_command", metavar="ACTION", help="train or eval (each has --help)")
    _add_train(actions)
    _add_eval(actions)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _add_train(actions: argparse._SubParsersAction) -> None:
    from jeoparda.superres.options import SRTrainOptions

    d = SRTrainOptions(Path(), Path())
    p = actions.add_parser(
        "train", help="train both networks (data-parallel under mpirun, srun or torchrun)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the 20->10 m network (input: 4 x 10 m bands + 6 x 20 m bands upsampled) and\n"
        "the 60->10 m network (all 12 bands) on pairs made by Wald's protocol: every band is blurred\n"
        "(Gaussian, response --mtf at the coarse Nyquist) and decimated by 2 or 6, and the network\n"
        "learns to restore the original, as a correction to bicubic interpolation. Each patch yields\n"
        "many windows, so a handful of patches is enough to start. Under a launcher every rank\n"
        "trains on its share of the patches; gradients are averaged (DDP or Horovod).\n\n"
        "At the end rank 0 evaluates the model on held-out patches (--eval-split) at reduced scale\n"
        "and stores the figures in MODEL; RUN_DIR/results.jsonl logs the run.")
    p.add_argument("--data", type=Path, required=True, help=DATA_HELP)
    p.add_argument("--out", type=Path, required=True, metavar="MODEL", help="model file to write (e.g. sr.pt)")
    p.add_argument("--run-dir", type=Path, help="folder for results.jsonl (default runs/sr-<job id or time>)")
    p.add_argument("--split", default=d.split, help=f"patches to train on (default {d.split})")
    p.add_argument("--eval-split", default=d.eval_split,
                   help=f"held-out patches for the final figures (default {d.eval_split})")
    p.add_argument("--patches", type=positive_int, default=d.patches,
                   help=f"at most this many training patches (default {d.patches})")
    p.add_argument("--eval-patches", type=positive_int, default=d.eval_patches,
                   help=f"at most this many held-out patches (default {d.eval_patches})")
    p.add_argument("--steps", type=positive_int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--batch", type=positive_int, default=d.batch,
                   help=f"windows per network, rank and step (default {d.batch})")
    p.add_argument("--window", type=positive_int, default=d.window,
                   help=f"window side of the 20 m network at reduced scale, px (default {d.window}; at most 60)")
    p.add_argument("--features", type=positive_int, default=d.features,
                   help=f"convolution width (default {d.features}; DSen2 used 128)")
    p.add_argument("--blocks", type=positive_int, default=d.blocks,
                   help=f"residual blocks (default {d.blocks}; DSen2 used 6, its deep variant 32)")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate, cosine decay (default {d.lr:g})")
    p.add_argument("--loss", choices=("mse", "l1"), default=d.loss,
                   help=f"training loss (default {d.loss}; DSen2 used l1, but RMSE is dominated by edges)")
    p.add_argument("--mtf", type=float, default=d.mtf,
                   help=f"Gaussian blur's response at the coarse Nyquist frequency (default {d.mtf:g})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--backend", choices=list(DIST_BACKENDS), default=d.backend,
                   help=f"data-parallel backend (default {d.backend})")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from jeoparda.superres.options import SRTrainOptions
    from jeoparda.superres.train import train_sr

    # every option of sr train is a field of SRTrainOptions under the same name
    given = vars(args)
    train_sr(SRTrainOptions(**{f.name: given[f.name] for f in fields(SRTrainOptions) if f.name in given}))
    return 0


def _add_eval(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "eval", help="RMSE, SRE and SAM of a model vs bicubic and bilinear on held-out patches",
        description="Degrade held-out patches by Wald's protocol (the model's --mtf), restore them with "
        "the model, bicubic and bilinear interpolation, and compare with the originals: RMSE (digital "
        "numbers), SRE (dB) and SAM (degrees), per band and for the 20 m and 60 m groups. --json prints "
        "one JSON object as the last line: the model's figures as rmse_20m, sre_B05, sam_60m ..., the "
        "baselines' as bicubic_rmse_20m, bilinear_sam_60m ...")
    p.add_argument("--model", type=Path, required=True, help="a model file written by jeoparda sr train")
    p.add_argument("--data", type=Path, required=True, help=DATA_HELP)
    p.add_argument("--split", default="test", help="held-out patches (default test)")
    p.add_argument("--patches", type=positive_int, default=200, help="at most this many patches (default 200)")
    p.add_argument("--truth", type=Path, metavar="DIR",
                   help="also compare at full resolution with known 10 m bands: DIR/<patch>.npy, (12, 120, 120) "
                   "uint16 (`jeoparda synth --sr-truth` writes them to ARCHIVE/sr-truth); keys full_rmse_20m ...")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON line (last)")
    p.set_defaults(func=_run_eval)


def _truth(folder: Path, name: str) -> Any:
    """The (12, 120, 120) 10 m truth of one patch; a missing or misshapen file is one line."""
    import numpy as np

    path = folder / f"{name}.npy"
    try:
        truth = np.load(path)
    except (OSError, ValueError) as exc:
        raise JeopardaError(f"{path}: no readable 10 m truth for patch {name} ({exc})") from None
    if truth.shape != (12, 120, 120):
        raise JeopardaError(f"{path}: truth has shape {truth.shape}, expected (12, 120, 120)")
    return truth


def _run_eval(args: argparse.Namespace) -> int:
    from jeoparda.progress import Progress
    from jeoparda.superres.data import native_patches
    from jeoparda.superres.evaluate import evaluate, evaluate_full, summary_lines
    from jeoparda.superres.model_file import load_model

    model = load_model(args.model)
    named = list(native_patches(args.data, args.split, args.patches))
    if not named:
        raise JeopardaError(f"{args.data}: no {args.split} patches")
    truths = [_truth(args.truth, name) for name, _ in named] if args.truth else []
    bar = Progress(len(named) * (2 if truths else 1), "sr eval")
    figures = {"model": str(args.model), "sha256": model.sha256, "split": args.split,
               **evaluate(model.pair, [b for _, b in named], model.mtf, bar.update)}
    if truths:
        figures.update(evaluate_full(model.pair, zip([b for _, b in named], truths, strict=True), bar.update))
    bar.close()
    print("\n".join(summary_lines(figures)))
    if truths:
        print("\n".join(["", *summary_lines(figures, "full_")]))
    if args.json:
        print(json.dumps(figures))
    return 0
