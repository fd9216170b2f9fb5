"""Applying a model at full resolution: native bands -> 12 bands on the 10 m grid (``convert --resample learned``).

The upsampler is pickled into conversion workers without its weights; each process loads the
model file once (checking it is still the file the plan hashed) and keeps it. On a CPU it computes
with one thread per process, so parallelism comes from ``--workers`` and the output does not depend
on how many there are. On GPUs it runs batches of patches with deterministic kernels and TF32 off
(TF32 rounding differs between GPU generations); the conversion processes of a node (MPI ranks x
workers) take the visible GPUs in turn, so no GPU serves them all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.slots import slot
from jeoparda.devices import gpu_visible, parse_device, runtime
from jeoparda.errors import JeopardaError
from jeoparda.sentinel2 import BANDS, TARGET_SIZE, band_indices
from jeoparda.superres.model_file import SRModel, load_model
from jeoparda.superres.network import SRPair
from jeoparda.superres.pairs import GROUPS, SCALE, full_inputs

_LOADED: dict[tuple[str, str, str], tuple[SRModel, Accelerator]] = {}


def resolve_device(device: str) -> tuple[str, Accelerator]:
    """What the conversion processes are told (``cpu``; ``cuda``: each process its own GPU;
    ``cuda:N``) and the accelerator that stands for here; ``auto`` is ``cuda`` where a GPU is
    visible, else ``cpu``; an unusable choice is one line."""
    accel = parse_device(device)
    if not accel.gpu:
        return "cpu", accel
    return (device if device.startswith("cuda:") else "cuda"), accel


def process_accelerator(device: str) -> Accelerator:
    """The accelerator of this conversion process: with a bare ``cuda``, the visible GPU whose turn
    this process's slot is; ``cuda:N`` and ``cpu`` as given."""
    if device == "cuda" and gpu_visible():
        return parse_device(f"cuda:{slot() % runtime().device_count()}")
    return parse_device(device)


class LearnedUpsampler:
    """Interpolation's drop-in: ``to_10m_many`` turns native-resolution band tuples into uint16 images."""

    def __init__(self, path: Path, sha256: str, device: str = "cpu", batch: int = 16) -> None:
        self.path, self.sha256, self.device, self.batch = Path(path), sha256, device, batch

    def _model(self) -> tuple[SRModel, Accelerator]:
        key = (str(self.path), self.sha256, self.device)
        if key not in _LOADED:
            model = load_model(self.path)
            if model.sha256 != self.sha256:
                raise JeopardaError(f"{self.path}: the model file changed during the conversion "
                                    f"(sha256 {model.sha256[:12]}, planned {self.sha256[:12]})")
            accel = process_accelerator(self.device)
            accel.exact_kernels()
            model.pair.to(accel.device)
            _LOADED[key] = (model, accel)
        return _LOADED[key]

    @torch.inference_mode()
    def to_10m_many(self, raws: list[Any]) -> list[np.ndarray]:
        """(12, 120, 120) uint16 per patch: 10 m bands as read, 20 m and 60 m bands from the networks."""
        if not raws:
            return []
        threads = torch.get_num_threads()
        if self.device == "cpu":
            torch.set_num_threads(1)  # the same reduction order whatever the number of workers
        try:
            model, accel = self._model()
            return self._apply(model.pair, accel, raws)
        finally:
            torch.set_num_threads(threads)

    def _apply(self, pair: SRPair, accel: Accelerator, raws: list[Any]) -> list[np.ndarray]:
        images = np.empty((len(raws), len(BANDS), TARGET_SIZE, TARGET_SIZE), np.uint16)
        for b in band_indices(10):
            images[:, b] = [r[b] for r in raws]
        for name, group in GROUPS.items():
            x = accel.to_device(torch.from_numpy(np.stack([full_inputs(group, r) for r in raws])))
            out = pair.nets[name](x).float().cpu().numpy() / SCALE
            images[:, list(group.outputs)] = np.clip(np.rint(out), 0, 65535).astype(np.uint16)
        return list(images)
