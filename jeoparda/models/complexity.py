"""Parameter counts and forward FLOPs (2 per multiply-add, as PyTorch's FlopCounterMode counts)."""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from jeoparda.sentinel2 import TARGET_SIZE


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gradient_bytes(model: str = "resnet50") -> int:
    """Bytes of one float32 gradient of the named model: what one all-reduce per step carries."""
    from jeoparda.models.registry import create_model

    return 4 * count_parameters(create_model(model))


def forward_flops(model: nn.Module, in_chans: int = 12, size: int = TARGET_SIZE) -> int:
    """FLOPs of one forward pass on one ``in_chans x size x size`` image, in eval mode."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, in_chans, size, size))
    model.train(was_training)
    return counter.get_total_flops()


def training_flops(model_name: str, in_chans: int, num_classes: int,
                   size: int | tuple[int, int] = TARGET_SIZE) -> float:
    """FLOPs of one training step per image: forward and backward (input gradients and weight
    gradients) of ``model_name`` on ``in_chans x size x size`` images. Counted on a copy built on
    the meta device (no memory, no arithmetic, no random numbers drawn), in train mode with a batch
    of 2 (batch norm needs more than one sample), halved. Only convolutions and matrix products
    count (FlopCounterMode's rules); the optimiser's update is not part of it."""
    side = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return _training_flops(model_name, in_chans, num_classes, side)


@lru_cache(maxsize=64)
def _training_flops(model_name: str, in_chans: int, num_classes: int, side: tuple[int, int]) -> float:
    from jeoparda.models.registry import create_model

    with torch.device("meta"):
        model = create_model(model_name, in_chans=in_chans, num_classes=num_classes)
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(torch.zeros(2, in_chans, *side, device="meta"))
        out.float().sum().backward()
    return counter.get_total_flops() / 2
