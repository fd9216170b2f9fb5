"""Typed run configuration: frozen dataclasses with validation.

The sections here are those the input pipeline needs; training adds its own and the YAML
layering with ``--set key=value`` overrides.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from jeoparda.errors import JeopardaError

DATA_BACKENDS = ("torch", "dali", "synthetic")


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise JeopardaError(f"configuration: {key}: {message}")


@dataclass(frozen=True)
class AugmentConfig:
    """Train-split augmentation; evaluation splits are never augmented."""

    flip: bool = True          # random horizontal and vertical flips
    rot90: bool = True         # random rotation by 0, 90, 180 or 270 degrees
    mixup_alpha: float = 0.0   # > 0: mixup with weight ~ Beta(alpha, alpha); 0 disables

    def __post_init__(self) -> None:
        _check(self.mixup_alpha >= 0, "data.augment.mixup_alpha", f"must be >= 0, got {self.mixup_alpha}")

    @property
    def any(self) -> bool:
        return self.flip or self.rot90 or self.mixup_alpha > 0


@dataclass(frozen=True)
class DataConfig:
    path: str = ""                 # a folder written by `jeoparda convert`
    backend: str = "torch"         # torch | dali | synthetic
    workers: int = 2               # background reader processes (torch) or CPU threads (dali)
    prefetch: int = 2              # batches queued per reader process
    block_size: int = 16           # shuffle granularity: patches read together from one shard
    verify_checksums: bool = True  # every shard hashed once per job (split over the ranks)
    stage: bool = False            # copy this node's shards to node-local storage first
    stage_dir: str = ""            # node-local folder; empty: the temporary directory ($TMPDIR)
    synthetic_patches: int = 0     # synthetic backend without a data path: patches per epoch
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _check(self.backend in DATA_BACKENDS, "data.backend",
               f"{self.backend!r} is not one of {', '.join(DATA_BACKENDS)}")
        _check(self.workers >= 0, "data.workers", f"must be >= 0, got {self.workers}")
        _check(self.prefetch >= 1, "data.prefetch", f"must be >= 1, got {self.prefetch}")
        _check(self.block_size >= 1, "data.block_size", f"must be >= 1, got {self.block_size}")
        _check(self.synthetic_patches >= 0, "data.synthetic_patches", "must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    batch_size: int = 32   # per worker
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs", f"must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, "train.batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class RunConfig:
    model: str = "resnet18"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
