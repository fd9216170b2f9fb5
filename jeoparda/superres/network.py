"""The DSen2-style residual CNN: conv, residual blocks, conv; output added to the bicubic estimate."""
from __future__ import annotations

import torch
from torch import nn

from jeoparda.superres.pairs import GROUPS, Group


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled before it is added back (keeps deep stacks stable, as in DSen2)."""

    def __init__(self, features: int, scale: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(features, features, 3, padding=1))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.body(x)


class SRNet(nn.Module):
    """Maps (N, C_in, H, W) inputs on the output grid to (N, C_out, H, W) sharpened bands."""

    def __init__(self, group: Group, features: int = 32, blocks: int = 4) -> None:
        super().__init__()
        self.residual_index: torch.Tensor
        self.register_buffer("residual_index", torch.tensor(group.residual_channels), persistent=False)
        self.head = nn.Sequential(nn.Conv2d(len(group.inputs), features, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(ResBlock(features) for _ in range(blocks)))
        self.tail = nn.Conv2d(features, len(group.outputs), 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.residual_index) + self.tail(self.blocks(self.head(x)))


class SRPair(nn.Module):
    """Both networks in one module, so one optimiser and one data-parallel wrapper train them."""

    def __init__(self, features: int = 32, blocks: int = 4) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({name: SRNet(g, features, blocks) for name, g in GROUPS.items()})

    def forward(self, x20: torch.Tensor, x60: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.nets["20m"](x20), self.nets["60m"](x60)
