"""The options of ``jeoparda sr train``, apart from the training (torch): the CLI builds its
parser from their defaults without importing torch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jeoparda.errors import JeopardaError
from jeoparda.superres.degrade import DEFAULT_MTF, mtf_sigma

#: The training losses (jeoparda.superres.train.LOSSES holds their functions).
LOSS_NAMES = ("mse", "l1")


@dataclass(frozen=True)
class SRTrainOptions:
    data: Path
    out: Path
    run_dir: Path | None = None
    split: str = "train"
    eval_split: str = "val"
    patches: int = 500          # training patches read (each yields many windows)
    eval_patches: int = 100
    steps: int = 3000
    batch: int = 16             # windows per network per rank and step
    window: int = 32            # px of the 20 m network's windows (the 60 m one uses its 18 px crops)
    features: int = 32
    blocks: int = 4
    lr: float = 1e-3
    loss: str = "mse"           # mse | l1 (DSen2's); RMSE is dominated by edges, which mse weighs more
    mtf: float = DEFAULT_MTF
    seed: int = 0
    backend: str = "ddp"
    log_every: int = 50

    def check(self) -> None:
        for key in ("patches", "eval_patches", "steps", "batch", "window", "features", "blocks", "log_every"):
            if getattr(self, key) < 1:
                raise JeopardaError(f"--{key.replace('_', '-')} must be at least 1 (got {getattr(self, key)})")
        if self.loss not in LOSS_NAMES:
            raise JeopardaError(f"--loss {self.loss!r}: choose one of {', '.join(LOSS_NAMES)}")
        if not self.lr > 0:
            raise JeopardaError(f"--lr must be > 0 (got {self.lr})")
        try:
            mtf_sigma(2, self.mtf)
        except ValueError as exc:
            raise JeopardaError(f"--mtf: {exc}") from None
