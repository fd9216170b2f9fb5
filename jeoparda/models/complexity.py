"""Parameter counts and forward FLOPs (2 per multiply-add, as PyTorch's FlopCounterMode counts)."""
from __future__ import annotations

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
