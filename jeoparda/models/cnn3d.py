"""``cnn3d``: a compact 3-D convolutional baseline (BWMS paper's 3D-CNN has about 1.75 M parameters).

The 12 bands become a depth axis, so every kernel spans 3 neighbouring bands and a spatial window
and spectral and spatial features are learned together (the point of a 3-D baseline). Five
Conv3d + BN + ReLU layers (1->32 with a 3x5x5 kernel, then 3x3x3: 32->64, 64->128, 128->128,
128->256), strided spatially early and along the bands later, global average pool, and a
256 -> 512 -> classes head. The widths were chosen to give 1.75 M parameters at 12 bands and 19
classes, so the baseline is compared at the paper's capacity.
"""
from __future__ import annotations

import torch
from torch import nn

from jeoparda.models.registry import FeatureHeadModel, register
from jeoparda.models.resnet import init_weights

# (out channels, kernel, stride) of each Conv3d; input depth = bands, height, width.
LAYERS = ((32, (3, 5, 5), (1, 2, 2)), (64, (3, 3, 3), (1, 2, 2)), (128, (3, 3, 3), (2, 2, 2)),
          (128, (3, 3, 3), (1, 1, 1)), (256, (3, 3, 3), (2, 2, 2)))


class CNN3D(FeatureHeadModel):
    def __init__(self, in_chans: int = 12, num_classes: int = 19, dropout: float = 0.25):
        super().__init__()
        layers, c_in = [], 1
        for c_out, kernel, stride in LAYERS:
            padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
            layers += [nn.Conv3d(c_in, c_out, kernel, stride, padding, bias=False),
                       nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.num_features = c_in
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in, 512), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(512, num_classes))
        init_weights(self)

    def to(self, *args, **kwargs) -> CNN3D:
        """Accept ``memory_format=torch.channels_last`` like the 2-D models: the 5-D Conv3d
        weights take its 3-D counterpart (plain channels_last is undefined for 5-D tensors)."""
        if kwargs.get("memory_format") is torch.channels_last:
            kwargs["memory_format"] = torch.channels_last_3d
        return super().to(*args, **kwargs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.unsqueeze(1))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(nn.functional.adaptive_avg_pool3d(x, 1))


@register("cnn3d", "compact 3-D CNN baseline over the band axis (about 1.75 M parameters)")
def cnn3d(in_chans: int = 12, num_classes: int = 19) -> CNN3D:
    return CNN3D(in_chans, num_classes)
