"""Checkpoints: written atomically (temporary name, then rename), the newest k kept, loaded with
``weights_only=True`` (plain tensors and containers only; no pickled code)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from jeoparda.models.trained import read_checkpoint

PATTERN = "checkpoint-e{epoch:04d}-s{step:06d}.pt"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save(run_dir: Path, state: dict[str, Any], epoch: int, step: int, keep: int) -> Path:
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PATTERN.format(epoch=epoch, step=step)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    for old in sorted(folder.glob("checkpoint-*.pt"))[:-keep]:
        old.unlink()
    return path


def newest(run_dir: Path) -> Path | None:
    found = sorted(checkpoint_dir(run_dir).glob("checkpoint-*.pt"))
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    """The checkpoint's contents (jeoparda.models.trained reads the format; load_trained rebuilds the model)."""
    return read_checkpoint(path)
