"""How a run of ``jeoparda predict`` cuts its windows, and whether its output fits: decided once
(by rank 0) from the model, the memory budget and the options, before any work."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jeoparda.errors import JeopardaError
from jeoparda.inference.cog import Georef, Raster
from jeoparda.inference.plan import TilePlan, cells_for
from jeoparda.inference.scratch import Scratch
from jeoparda.models.footprint import (
    context_margin,
    default_budget,
    output_stride,
    receptive_field,
    working_bytes_per_pixel,
)

PROBE_LIMIT = 8192  # a receptive field reaching this far is not local


@dataclass
class Options:
    """What the command line chose."""
    split: str = "all"
    window: int = 0               # side of each input crop in pixels; 0: as large as the budget allows
    overlap: int | None = None    # context each side; None: the model's receptive field
    probabilities: bool = False
    max_memory: int = 0           # bytes of working set; 0: default_budget()
    bf16: bool = False
    bands_spec: str = ""          # the training run's data.bands


@dataclass(frozen=True)
class Layout:
    """How windows are cut for this model and budget."""
    margin: int
    stride: int
    cells: int
    crop_pixels: int


def layout(model: torch.nn.Module, in_chans: int, patch_side: int, opts: Options) -> Layout:
    """Margin, stride, cells per window and pixels per model call; one line when they cannot be met."""
    if opts.overlap is not None and opts.overlap < 0 or opts.window < 0:
        raise JeopardaError("--overlap and --window must not be negative")
    stride = output_stride(model)
    field = receptive_field(model, in_chans, largest=PROBE_LIMIT)
    if not field.local and opts.overlap is None:
        raise JeopardaError(f"the model's receptive field reaches beyond {PROBE_LIMIT} pixels (global pooling or "
                            "normalisation over the whole image?): windows cannot label as one pass does; give "
                            "--overlap N to label in windows anyway")
    margin = context_margin(field, stride) if opts.overlap is None else opts.overlap
    if margin % stride:
        raise JeopardaError(f"--overlap {margin} must be a multiple of the model's output stride ({stride})")
    per_pixel = working_bytes_per_pixel(model, in_chans)
    budget = opts.max_memory or default_budget()
    if not opts.window:
        cells, crop_pixels = cells_for(budget, per_pixel, margin, patch_side)
        return Layout(margin, stride, cells, crop_pixels)
    if opts.window < field.side or opts.window < patch_side + 2 * margin:
        raise JeopardaError(f"--window {opts.window} is smaller than the model's receptive field ({field.side} px) "
                            f"or than one patch with its context ({patch_side} + 2 x {margin} px)")
    return Layout(margin, stride, (opts.window - 2 * margin) // patch_side,
                  max(int(budget / per_pixel), (opts.window + 2 * stride) ** 2))


def check_space(plans: list[TilePlan], targets: list[Path], probabilities: bool) -> None:
    """Refuse before any work when the output folder cannot hold the maps and their scratch files."""
    sizes = [map_bytes(plan, probabilities) for plan in plans]
    scratch = max(Scratch(t, p.height, p.width, probabilities).bytes_needed() for p, t in zip(plans, targets))
    need = sum(sizes) + scratch
    folder = targets[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise JeopardaError(f"{folder}: the map{'s' if len(plans) > 1 else ''} may take up to {size_text(need)} "
                            f"(scratch included) but the file system has {size_text(free)} free")


def size_text(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def map_bytes(plan: TilePlan, probabilities: bool) -> int:
    kinds = [np.dtype(np.uint8)] + ([np.dtype(np.float32)] if probabilities else [])
    return sum(Raster(plan.width, plan.height, k, 0, Georef(0, 0, 0, 1)).bound_bytes() for k in kinds)


