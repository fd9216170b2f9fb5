"""The super-resolution model file: both networks, their sizes, band set, training facts and eval figures.

A ``torch.save`` dictionary read back with ``weights_only=True`` (no code runs on load), tagged
``format: jeoparda-sr``. Its SHA-256 identifies the model in conversion manifests.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from jeoparda.errors import JeopardaError, one_line
from jeoparda.safe_files import refuse_link, write_bytes_atomic
from jeoparda.sentinel2 import BAND_NAMES
from jeoparda.superres.network import SRPair

FORMAT, VERSION = "jeoparda-sr", 1


@dataclass
class SRModel:
    """A loaded model: the two networks plus what the file says about them."""

    pair: SRPair
    features: int
    blocks: int
    mtf: float
    bands: tuple[str, ...] = BAND_NAMES
    training: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: Path | None = None


def save_model(model: SRModel, path: Path) -> str:
    """Write ``model`` atomically to ``path``; returns the file's SHA-256."""
    doc = {"format": FORMAT, "version": VERSION, "bands": list(model.bands),
           "features": model.features, "blocks": model.blocks, "mtf": model.mtf,
           "training": model.training, "eval": model.eval,
           "state": {k: v.detach().cpu() for k, v in model.pair.state_dict().items()}}
    buf = io.BytesIO()
    torch.save(doc, buf)
    data = buf.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path)
    write_bytes_atomic(path, data)  # a temporary file, never a link, removed on failure
    return hashlib.sha256(data).hexdigest()


def load_model(path: Path) -> SRModel:
    """Read a model file; anything else (a training checkpoint, another band set) is one line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JeopardaError(f"{path}: no such model file (jeoparda sr train --out writes one)") from None
    try:
        doc = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise JeopardaError(f"{path}: not a jeoparda super-resolution model (unreadable as a torch file: "
                            f"{one_line(exc)[:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        what = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        hint = "; a training checkpoint?" if isinstance(doc, dict) and "model" in doc else ""
        raise JeopardaError(f"{path}: not a jeoparda super-resolution model (format {what!r}, expected "
                            f"{FORMAT!r}{hint})")
    if doc.get("version") != VERSION:
        raise JeopardaError(f"{path}: {FORMAT} version {doc.get('version')!r}; this jeoparda reads version {VERSION}")
    bands = tuple(doc.get("bands", ()))
    if bands != BAND_NAMES:
        raise JeopardaError(f"{path}: a model for the bands {', '.join(bands) or '(none)'}; jeoparda's "
                            f"super-resolution needs {', '.join(BAND_NAMES)} in that order")
    try:
        pair = SRPair(int(doc["features"]), int(doc["blocks"]))
        pair.load_state_dict(doc["state"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise JeopardaError(f"{path}: damaged {FORMAT} file ({one_line(exc)[:160]})") from None
    pair.eval()
    return SRModel(pair, int(doc["features"]), int(doc["blocks"]), float(doc["mtf"]), bands,
                   dict(doc.get("training", {})), dict(doc.get("eval", {})),
                   hashlib.sha256(data).hexdigest(), path)
