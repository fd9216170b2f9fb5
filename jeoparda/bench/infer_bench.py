"""``jeoparda bench infer``: label a mosaic of N x N patches with an FCN in one pass, against the
patch-based way (every output window inferred from its own context crop, as the patch-based
baseline of Maggiori et al. does), in one run on the same device.

The patch-based pass cuts the mosaic into ``window`` x ``window`` output windows, gives the network
each window with ``(context - window) / 2`` pixels of surroundings (reflect-padded at the mosaic's
edge), and keeps the window's centre of the output; crops go through in batches as large as the
memory budget allows, by the rule ``jeoparda predict`` batches its windows with
(:func:`jeoparda.models.footprint.crops_per_call`), so the ratio compares the algorithms, not the
number of launches. Both passes produce a full-size class map; seconds include everything after the
model is built.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.models.footprint import crops_per_call


@torch.no_grad()
def fcn_pass(model: torch.nn.Module, mosaic: torch.Tensor) -> torch.Tensor:
    return model(mosaic[None])[0].argmax(0)


@torch.no_grad()
def patch_pass(model: torch.nn.Module, mosaic: torch.Tensor, window: int, context: int, batch: int) -> torch.Tensor:
    c, h, w = mosaic.shape
    pad = (context - window) // 2
    padded = torch.nn.functional.pad(mosaic[None], (pad, pad, pad, pad), mode="reflect")[0]
    rows, cols = h // window, w // window
    # every context crop as a strided view of the padded mosaic: (rows, cols, C, context, context);
    # a batch gathers only its own crops
    crops = padded.unfold(1, context, window).unfold(2, context, window).permute(1, 2, 0, 3, 4)
    where = torch.arange(rows * cols, device=mosaic.device)
    labels = torch.cat([model(crops[part // cols, part % cols]).argmax(1)[:, pad:pad + window, pad:pad + window]
                        for part in where.split(batch)])
    # windows back into place in one reshape (row-major order), not one small copy per window
    return labels.reshape(rows, cols, window, window).permute(0, 2, 1, 3).reshape(h, w)


def run(model: torch.nn.Module, patches: int, accel: Accelerator, window: int = 24, context: int = 72,
        batch: int = 0, in_chans: int = 12, size: int = 120, repeat: int = 1, max_memory: int = 0) -> dict[str, Any]:
    """Seconds and pixels/s of both passes over a random mosaic of ``patches`` x ``patches`` on ``accel``;
    ``batch`` 0: as many crops per call as ``max_memory`` (0: the default budget) holds."""
    device = accel.device
    side = patches * size
    if side % window or (context - window) % 2 or context % 4:
        raise ValueError("the mosaic must divide into windows, and context - window be even, context a multiple of 4")
    if not batch:
        batch = crops_per_call(model, in_chans, context, max_memory)
    model = model.to(device).eval()
    mosaic = torch.randn(in_chans, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    times: dict[str, list[float]] = {"fcn": [], "patch": []}
    for _ in range(repeat):
        for name in ("fcn", "patch"):  # alternated: drift on a shared machine hits both alike
            accel.synchronize()
            start = time.perf_counter()
            fcn_pass(model, mosaic) if name == "fcn" else patch_pass(model, mosaic, window, context, batch)
            accel.synchronize()
            times[name].append(time.perf_counter() - start)
    fcn_s, patch_s = min(times["fcn"]), min(times["patch"])
    pixels = side * side
    return {"patches": patches, "pixels": pixels, "window": window, "context": context, "batch": batch,
            "device": accel.kind,
            "device_name": accel.name,
            "fcn_s": fcn_s, "patch_s": patch_s, "fcn_pixels_per_s": pixels / fcn_s,
            "patch_pixels_per_s": pixels / patch_s, "speedup": patch_s / fcn_s, "runs": times}
