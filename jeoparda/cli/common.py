"""Argument helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jeoparda.config import RunConfig


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


_UNITS = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}


def byte_size(text: str) -> int:
    """``512M``, ``2G``, ``1.5GiB``, ``800000000``: bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 512M, 2G)")
    return int(float(match[1]) * _UNITS[match[2]])


def add_max_memory(p: argparse.ArgumentParser, what: str) -> None:
    """--max-memory, as jeoparda predict and jeoparda bench infer size their model calls by it."""
    p.add_argument("--max-memory", type=byte_size, default=0,
                   help=f"working set per model call, e.g. 512M or 4G: {what} (default 1G, or a quarter of the "
                   "available memory if less)")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config and --set, as jeoparda train and jeoparda bench train take them."""
    p.add_argument("--config", type=Path, action="append", default=[], metavar="FILE",
                   help="YAML configuration (repeatable; later files override earlier ones)")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="override one key, e.g. train.batch_size=32 (repeatable)")


def run_config(args: argparse.Namespace) -> RunConfig:
    """The configuration ``--config``/``--set`` resolve to, checked against the registries the
    configuration module cannot see (it sits below them): a ``train.task`` that names no task is
    refused here, before any rank starts, folder is made or log is written."""
    from jeoparda.config import load_config
    from jeoparda.tasks import task_class

    cfg = load_config(args.config, args.overrides)
    if cfg.train.task:
        task_class(cfg.train.task)
    return cfg
