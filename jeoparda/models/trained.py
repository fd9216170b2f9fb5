"""``load_trained(path)``: a trained model back from a jeoparda checkpoint, built and with its weights.

A checkpoint (written by jeoparda.training.checkpoint) is a ``torch.save`` dict holding at least
``model`` (the state dict) and ``config`` (the run's resolved configuration, whose ``model`` is the
registry name). It records neither the input channels nor the classes: they are read from the
weights, where probe builds of the same model (on the meta device: no memory, little time) differ
when only ``in_chans`` or only ``num_classes`` differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jeoparda.errors import JeopardaError, one_line
from jeoparda.models.registry import create_model, model_kind
from jeoparda.safe_files import open_regular

_PROBE = (12, 19)  # in_chans, num_classes of the reference probe build
_LIMIT = 1 << 40   # bytes: no bound in practice; the point is to refuse devices and FIFOs unread


@dataclass(frozen=True)
class TrainedModel:
    """A model rebuilt from a checkpoint, with what the checkpoint said about it."""

    model: nn.Module
    name: str                  # the registry name
    config: dict[str, Any]     # the run's resolved configuration, as recorded
    in_chans: int
    num_classes: int


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, loaded with ``weights_only=True`` (plain tensors and containers only;
    no pickled code), from a regular file only; one line naming the file on anything off."""
    try:
        with open_regular(Path(path), _LIMIT) as handle:
            return torch.load(handle, map_location="cpu", weights_only=True)
    except JeopardaError:
        raise
    except Exception as exc:  # a damaged file raises many kinds
        why = "it holds pickled code or objects, which jeoparda never loads" if "weights_only" in str(exc) \
            else one_line(exc)
        raise JeopardaError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {why})") from None


def _probe(name: str, in_chans: int, num_classes: int) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in create_model(name, in_chans, num_classes).state_dict().items()}


def _read_size(base: dict[str, tuple[int, ...]], varied: dict[str, tuple[int, ...]], probe_value: int,
               weights: dict[str, torch.Tensor]) -> int | None:
    """The checkpoint's value at the first place where ``varied`` (``probe_value`` + 1) differs from ``base``;
    ``probe_value`` itself where nothing differs (the model's weights do not depend on it: CNN3D's bands)."""
    if varied == base:
        return probe_value
    for key, shape in base.items():
        other, tensor = varied.get(key), weights.get(key)
        if other is None or tensor is None or len(other) != len(shape) or tensor.ndim != len(shape):
            continue
        for dim, (a, b) in enumerate(zip(shape, other, strict=True)):
            if a == probe_value and b == a + 1:
                return int(tensor.shape[dim])
    return None


def _sizes(name: str, weights: dict[str, torch.Tensor]) -> tuple[int | None, int | None]:
    """(in_chans, num_classes) read from ``weights``; None where the model does not show them."""
    chans, classes = _PROBE
    base = _probe(name, chans, classes)
    try:
        in_chans = _read_size(base, _probe(name, chans + 1, classes), chans, weights)
    except JeopardaError:  # a model built for one band set only (BWMS): it takes nothing else
        in_chans = chans
    return in_chans, _read_size(base, _probe(name, chans, classes + 1), classes, weights)


def load_trained(path: Path, *, kind: str | None = None, hint: str = "", name: str | None = None) -> TrainedModel:
    """The model a jeoparda checkpoint holds, built from its recorded name with its weights.

    ``kind`` (classification, dense) and ``name`` refuse checkpoints of another kind or model with
    one clear error (``hint`` ends the kind's message; default: which kind is needed)."""
    state = read_checkpoint(path)
    config = state.get("config") if isinstance(state, dict) else None
    recorded = config.get("model") if isinstance(config, dict) else None
    if not recorded or not isinstance(state, dict) or "model" not in state:
        raise JeopardaError(f"{path}: not a jeoparda training checkpoint (no model or config)")
    assert isinstance(config, dict)
    weights = state["model"]
    if not isinstance(recorded, str):
        raise JeopardaError(f"{path}: config.model is {type(recorded).__name__}, not a model name")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise JeopardaError(f"{path}: 'model' is not a state dict (names to tensors)")
    if name is not None and recorded != name:
        raise JeopardaError(f"{path}: a checkpoint of {recorded}, not {name}")
    try:
        actual = model_kind(recorded)
    except JeopardaError as exc:
        raise JeopardaError(f"{path}: {exc}") from None
    if kind is not None and actual != kind:
        raise JeopardaError(f"{path}: a checkpoint of {recorded}, a {actual} model; "
                            + (hint or f"a {kind} one is needed"))
    in_chans, num_classes = _sizes(recorded, weights)
    if in_chans is None or num_classes is None:
        raise JeopardaError(f"{path}: cannot tell the classes and channels of {recorded} from its weights")
    model = create_model(recorded, in_chans=in_chans, num_classes=num_classes)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # torch's message: a heading line, then one line per mismatch
        lines = str(exc).splitlines()
        raise JeopardaError(f"{path}: the weights do not fit {recorded} ({lines[-1].strip()})") from None
    return TrainedModel(model, recorded, config, in_chans, num_classes)
