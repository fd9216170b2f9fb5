"""Fully convolutional networks for dense labelling: one class map per class, at input size.

``fcn_maggiori`` is the network of Maggiori et al. (TGRS 2017) for 12 bands: a 12x12 convolution
with stride 4 (64 maps), 4x4 (112), 3x3 (80), the classifier as a 9x9 convolution (one map per
class) and a learned 8x8 deconvolution with stride 4 back to input resolution. Padding keeps the
sizes: 4 on the first convolution (so H -> H/4 for H a multiple of 4), 1 before and 2 after on the
4x4 (an even kernel cannot be centred), 1 on the 3x3, 4 on the 9x9, and 2 on the
deconvolution ((H/4 - 1)·4 - 2·2 + 8 = H). Output stride 4: inputs must be multiples of 4.

``fcn_resnet18`` / ``fcn_resnet50``: our ResNets as encoders with skip-fused upsampling (FCN-8s
style): 1x1 classifiers on the stride-8, -16 and -32 features, each coarser map upsampled
bilinearly to the next finer one and added, the sum upsampled to the input. Skip fusion keeps the
encoders exactly the classification networks (same weights layout, same FLOPs up to the heads),
where dilated stages would change their cost; the finer skips give the boundaries the coarse
stride-32 map lacks. Any input size works (multiples of 32 align the grids exactly). Under
train.deterministic the bilinear upsampling runs as matrix products (jeoparda/models/upsample.py):
CUDA has no deterministic backward for the interpolation kernel.
"""
from __future__ import annotations

import torch
from torch import nn

from jeoparda.models.registry import register
from jeoparda.models.resnet import BasicBlock, Bottleneck, classic_stem, init_weights, make_stages
from jeoparda.models.upsample import bilinear


class FCNMaggiori(nn.Module):
    stride = 4

    def __init__(self, in_chans: int = 12, num_classes: int = 19) -> None:
        super().__init__()
        relu = nn.ReLU(inplace=True)
        self.features = nn.Sequential(nn.Conv2d(in_chans, 64, 12, stride=4, padding=4), relu,
                                      nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(64, 112, 4), nn.ReLU(inplace=True),
                                      nn.Conv2d(112, 80, 3, padding=1), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(80, num_classes, 9, padding=4)
        self.upsample = nn.ConvTranspose2d(num_classes, num_classes, 8, stride=4, padding=2)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.classifier(self.features(x)))


class FCNResNet(nn.Module):
    stride = 32

    def __init__(self, block: type[BasicBlock], layers: tuple[int, ...], in_chans: int = 12,
                 num_classes: int = 19) -> None:
        super().__init__()
        act = lambda: nn.ReLU(inplace=True)  # noqa: E731
        self.stem = classic_stem(in_chans, act)
        stages, _ = make_stages(block, layers, 64, act, avg_down=False, zero_init=False)
        self.stages = nn.ModuleList(stages)
        widths = [w * block.expansion for w in (128, 256, 512)]
        self.heads = nn.ModuleList(nn.Conv2d(w, num_classes, 1) for w in widths)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)
        skips = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                skips.append(x)  # strides 8, 16, 32
        out = self.heads[2](skips[2])
        for head, skip in ((self.heads[1], skips[1]), (self.heads[0], skips[0])):
            out = bilinear(out, skip.shape[-2:]) + head(skip)
        return bilinear(out, size)


@register("fcn_maggiori", "FCN of Maggiori et al. 2017 (4 conv layers + deconvolution), dense", kind="dense")
def fcn_maggiori(in_chans: int = 12, num_classes: int = 19) -> FCNMaggiori:
    return FCNMaggiori(in_chans, num_classes)


@register("fcn_resnet18", "ResNet-18 encoder, skip-fused upsampling (strides 8/16/32), dense", kind="dense")
def fcn_resnet18(in_chans: int = 12, num_classes: int = 19) -> FCNResNet:
    return FCNResNet(BasicBlock, (2, 2, 2, 2), in_chans, num_classes)


@register("fcn_resnet50", "ResNet-50 encoder, skip-fused upsampling (strides 8/16/32), dense", kind="dense")
def fcn_resnet50(in_chans: int = 12, num_classes: int = 19) -> FCNResNet:
    return FCNResNet(Bottleneck, (3, 4, 6, 3), in_chans, num_classes)
