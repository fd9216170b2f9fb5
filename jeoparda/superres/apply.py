"""Applying a model at full resolution: native bands -> 12 bands on the 10 m grid (``convert --resample learned``).

The upsampler is pickled into conversion workers without its weights; each process loads the
model file once (checking it is still the file the plan hashed) and keeps it. On a CPU it computes
with one thread per process, so parallelism comes from ``--workers`` and the output does not depend
on how many there are; on a GPU it runs batches of patches with deterministic kernels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from jeoparda.errors import JeopardaError
from jeoparda.sentinel2 import BANDS, TARGET_SIZE, band_indices
from jeoparda.superres.model_file import SRModel, load_model
from jeoparda.superres.network import SRPair
from jeoparda.superres.pairs import GROUPS, SCALE, full_inputs

_LOADED: dict[tuple[str, str, str], SRModel] = {}


def resolve_device(device: str) -> str:
    """``auto`` is ``cuda`` where a GPU is visible, else ``cpu``; an unusable choice is one line."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise JeopardaError(f"--device {device!r}: use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise JeopardaError(f"--device {device}: no CUDA GPU is visible to this process")
    return device


class LearnedUpsampler:
    """Interpolation's drop-in: ``to_10m_many`` turns native-resolution band tuples into uint16 images."""

    def __init__(self, path: Path, sha256: str, device: str = "cpu", batch: int = 16) -> None:
        self.path, self.sha256, self.device, self.batch = Path(path), sha256, device, batch

    def _model(self) -> SRModel:
        key = (str(self.path), self.sha256, self.device)
        if key not in _LOADED:
            model = load_model(self.path)
            if model.sha256 != self.sha256:
                raise JeopardaError(f"{self.path}: the model file changed during the conversion "
                                    f"(sha256 {model.sha256[:12]}, planned {self.sha256[:12]})")
            if self.device != "cpu":
                torch.backends.cudnn.deterministic = True
                torch.backends.cudnn.benchmark = False
            model.pair.to(self.device)
            _LOADED[key] = model
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
            return self._apply(self._model().pair, raws)
        finally:
            torch.set_num_threads(threads)

    def _apply(self, pair: SRPair, raws: list[Any]) -> list[np.ndarray]:
        images = np.empty((len(raws), len(BANDS), TARGET_SIZE, TARGET_SIZE), np.uint16)
        for b in band_indices(10):
            images[:, b] = [r[b] for r in raws]
        for name, group in GROUPS.items():
            x = torch.from_numpy(np.stack([full_inputs(group, r) for r in raws])).to(self.device)
            out = pair.nets[name](x).float().cpu().numpy() / SCALE
            images[:, list(group.outputs)] = np.clip(np.rint(out), 0, 65535).astype(np.uint16)
        return list(images)
