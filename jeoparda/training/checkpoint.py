"""Checkpoints: written atomically (temporary name, then rename) inside the run folder without
following a link, the newest k kept, loaded with ``weights_only=True`` (plain tensors and containers
only; no pickled code). A failed write (a full disk) removes its temporary file and says so in one
line; the temporary files a killed process left are swept by the next save.

A checkpoint also records what the run was (:func:`identity`): resuming with another world size,
model, optimiser, global batch, task, bands or data set is refused (:func:`mismatch`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from jeoparda.cluster.backends import Backend
from jeoparda.config import RunConfig
from jeoparda.errors import JeopardaError, one_line
from jeoparda.loaders.base import Loader
from jeoparda.models.trained import read_checkpoint
from jeoparda.safe_files import make_dirs, open_write, refuse_link, replacing, sweep_temps

PATTERN = "checkpoint-e{epoch:04d}-s{step:06d}.pt"
#: What must be the same to resume, with how a message names it.
IDENTITY = {"world_size": "world size", "model": "model", "optimizer": "train.optimizer",
            "global_batch": "global batch", "task": "task", "bands": "bands", "dataset": "data set",
            "data_fingerprint": "data set fingerprint", "train_samples": "training samples"}


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save(run_dir: Path, state: dict[str, Any], epoch: int, step: int, keep: int) -> Path:
    folder = make_dirs(run_dir, "checkpoints")  # a link planted at checkpoints/ is refused
    sweep_temps(folder)
    path = folder / PATTERN.format(epoch=epoch, step=step)
    try:
        with replacing(path) as tmp, os.fdopen(open_write(tmp), "wb") as handle:
            writer = _Writer(handle)
            try:
                torch.save(state, writer)  # type: ignore[arg-type]  # a file-like object
            except RuntimeError as exc:  # torch's writer hides why a write failed (a full disk)
                raise (writer.error or exc) from None
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, RuntimeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        raise JeopardaError(f"{path}: cannot write the checkpoint ({why}); its partial file is removed") from None
    for old in sorted(folder.glob("checkpoint-*.pt"))[:-keep]:
        old.unlink()
    return path


class _Writer:
    """A file for torch.save that keeps the OSError of a failed write (torch replaces it with a
    RuntimeError that does not say why)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return int(self.handle.write(data))
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def newest(run_dir: Path) -> Path | None:
    """The newest checkpoint; a link at checkpoints/ or at the checkpoint is refused."""
    folder = checkpoint_dir(run_dir)
    refuse_link(folder)
    found = sorted(folder.glob("checkpoint-*.pt"))
    if found:
        refuse_link(found[-1])
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    """The checkpoint's contents (jeoparda.models.trained reads the format; load_trained rebuilds the model)."""
    return read_checkpoint(path)


def identity(state: dict[str, Any]) -> dict[str, Any]:
    """What the run that wrote ``state`` was; older checkpoints without ``identity`` give what
    their configuration and world size say."""
    if not isinstance(state, dict):
        return {}
    if isinstance(state.get("identity"), dict):
        return dict(state["identity"])
    world = state.get("world_size")
    cfg: dict[str, Any] = state["config"] if isinstance(state.get("config"), dict) else {}
    train: dict[str, Any] = cfg["train"] if isinstance(cfg.get("train"), dict) else {}
    out = {"world_size": world, "model": cfg.get("model"), "optimizer": train.get("optimizer")}
    if isinstance(world, int) and isinstance(train.get("batch_size"), int):
        out["global_batch"] = world * train["batch_size"]
    return {k: v for k, v in out.items() if v is not None}


def run_identity(cfg: RunConfig, world: int, global_batch: int, task: str, loader: Loader) -> dict[str, Any]:
    """The identity of the run ``cfg`` on ``world`` ranks, training with ``loader``."""
    out: dict[str, Any] = {"world_size": world, "model": cfg.model, "optimizer": cfg.train.optimizer,
                           "global_batch": global_batch, "task": task, "bands": loader.band_names,
                           "dataset": loader.dataset}
    if loader.source:  # the training split's shards, by content
        shards = loader.src.shards
        digest = hashlib.sha256("".join(str(s.get("sha256", s.get("file"))) for s in shards).encode())
        out.update(data_fingerprint=digest.hexdigest()[:16], train_samples=int(sum(loader.src.sizes)))
    return out


def check_same_run(path: Path, state: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse, in one line, to resume from ``path`` (holding ``state``) a run that is not ``now``."""
    differs = mismatch(identity(state), now)
    if differs:
        raise JeopardaError(f"{path}: cannot resume this run with other settings ({differs}); resume "
                            "with the checkpoint's or start a new run with another --out")


def mismatch(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """What differs between the checkpoint's identity and this run's, in one phrase; None if nothing."""
    diffs = [f"{IDENTITY.get(k, k)} {saved[k]} in the checkpoint, {now[k]} now"
             for k in IDENTITY if k in saved and k in now and saved[k] != now[k]]
    return "; ".join(diffs) or None


def own_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """This rank's floating-point buffers (batch-norm statistics), copied to the CPU."""
    return {name: b.detach().cpu().clone() for name, b in model.named_buffers() if b.is_floating_point()}


def averaged_state(model: torch.nn.Module, backend: Backend) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state with its floating-point buffers averaged over the ranks (a
    collective); the live model is left alone."""
    state = model.state_dict()  # references: only the averaged buffers are copies (GPU memory is short then)
    for name, buffer in model.named_buffers():
        if buffer.is_floating_point() and name in state:  # a non-persistent buffer is not saved
            state[name] = backend.all_reduce(buffer.detach().clone(), "sum").div_(backend.world_size)
    return state


#: What a resumable checkpoint holds besides the parts loaded with load_state_dict.
_SCALARS = ("epoch", "step", "rng")


def apply_state(path: Path, state: Any, parts: dict[str, Any]) -> tuple[int, int]:
    """Load each of ``parts`` (model, optimizer, schedule, scaler: objects with load_state_dict)
    from ``state`` read from ``path``; returns (epoch, step). A checkpoint lacking a part, or holding
    one of another shape or kind, is one line naming the file."""
    try:
        if not isinstance(state, dict):
            raise TypeError(f"holds a {type(state).__name__}, not a dictionary")
        missing = [k for k in (*parts, *_SCALARS) if k not in state]
        if missing:
            raise KeyError(f"lacks {', '.join(missing)}")
        for name, part in parts.items():
            part.load_state_dict(state[name])
        return int(state["epoch"]), int(state["step"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise JeopardaError(f"{path}: not a checkpoint this run can resume ({one_line(exc).strip(chr(39))})") from None


def set_buffers(model: torch.nn.Module, buffers: dict[str, torch.Tensor]) -> None:
    """Put :func:`own_buffers` back into ``model``."""
    live = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in buffers.items():
            live[name].copy_(value)
