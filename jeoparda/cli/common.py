"""Argument helpers shared by several subcommands."""
from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config and --set, as jeoparda train and jeoparda bench train take them."""
    p.add_argument("--config", type=Path, action="append", default=[], metavar="FILE",
                   help="YAML configuration (repeatable; later files override earlier ones)")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="override one key, e.g. train.batch_size=32 (repeatable)")
