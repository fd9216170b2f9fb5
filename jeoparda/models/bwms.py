"""BWMS: the band-wise multi-scale CNN of Kang & Demir (IGARSS 2020).

Input is the 12-band, 10 m tensor of the shards; B01 and B09 (60 m) are not used.
1. Band-wise multi-scale convolution: every band is convolved on its own (depthwise, no bias) with
   kernels 1, 3, 5 and 7. The 10 m group (B02 B03 B04 B08) uses stride 2 (120 -> 60); the 20 m
   group (B05 B06 B07 B8A B11 B12) is first average-pooled by 2 back to its native 60x60 and
   convolved with stride 1. Concatenated: 10 bands x 4 scales = 40 channels.
2. Pixel-wise spectral convolution: 1x1, 40 -> 32, batch norm, LeakyReLU(0.1).
3. An xresnet trunk (fastai's ResNet-D style) without the stem's first convolution (the band-wise
   stage takes its place): 32 -> 32 and 32 -> 64 3x3 convolutions, max-pool, four stages with
   average-pool shortcuts and the last batch norm of each block zero-initialised, LeakyReLU(0.1).
4. Head: global average pool, dropout 0.25, 512 -> 128, LeakyReLU, dropout 0.25, 128 -> classes.
With in_chans=12 and 19 classes this has 11,265,115 parameters, as the authors' code.
"""
from __future__ import annotations

import torch
from torch import nn

from jeoparda.errors import JeopardaError
from jeoparda.models.registry import FeatureHeadModel, register
from jeoparda.models.resnet import BasicBlock, Bottleneck, conv_bn, init_weights, make_stages
from jeoparda.sentinel2 import BANDS, band_indices

SCALES = (1, 3, 5, 7)


def leaky() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class BandWiseMultiScale(nn.Module):
    """Depthwise convolutions at several kernel sizes: one grouped convolution per size."""

    def __init__(self, bands: int, stride: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(bands, bands, k, stride, k // 2, groups=bands, bias=False)
                                   for k in SCALES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x) for conv in self.convs], dim=1)


class BWMS(FeatureHeadModel):
    idx10: torch.Tensor  # buffers: canonical indices of the 10 m and 20 m bands
    idx20: torch.Tensor

    def __init__(self, block: type[BasicBlock], layers: tuple[int, ...], in_chans: int = 12,
                 num_classes: int = 19, dropout: float = 0.25):
        super().__init__()
        if in_chans != len(BANDS):
            raise JeopardaError(f"bwms needs the {len(BANDS)}-band input (got in_chans={in_chans})")
        self.register_buffer("idx10", torch.tensor(band_indices(10)), persistent=False)
        self.register_buffer("idx20", torch.tensor(band_indices(20)), persistent=False)
        n10, n20 = len(band_indices(10)), len(band_indices(20))
        self.bands10 = BandWiseMultiScale(n10, stride=2)
        self.bands20 = BandWiseMultiScale(n20, stride=1)
        self.spectral = conv_bn(len(SCALES) * (n10 + n20), 32, 1, act=leaky)
        self.stem = nn.Sequential(conv_bn(32, 32, 3, act=leaky), conv_bn(32, 64, 3, act=leaky),
                                  nn.MaxPool2d(3, 2, 1))
        self.stages, self.num_features = make_stages(block, layers, 64, leaky, avg_down=True, zero_init=True)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(self.num_features, 128),
                                  leaky(), nn.Dropout(dropout), nn.Linear(128, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x10 = x.index_select(1, self.idx10)
        x20 = nn.functional.avg_pool2d(x.index_select(1, self.idx20), 2)
        x = torch.cat([self.bands10(x10), self.bands20(x20)], dim=1)
        return self.stages(self.stem(self.spectral(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1))


@register("bwms", "BWMS (Kang & Demir 2020): band-wise multi-scale conv + xresnet18 trunk")
def bwms(in_chans: int = 12, num_classes: int = 19) -> BWMS:
    return BWMS(BasicBlock, (2, 2, 2, 2), in_chans, num_classes)


@register("bwms50", "BWMS with the xresnet50 trunk (the authors' ResNet50 variant)")
def bwms50(in_chans: int = 12, num_classes: int = 19) -> BWMS:
    return BWMS(Bottleneck, (3, 4, 6, 3), in_chans, num_classes)
