"""The ResNet family: standard ResNet (He et al. 2016), ResNet-D (He et al. 2019) and fastai's
xresnet trunk, from one configurable implementation.

- standard: 7x7 stem, 1x1 strided convolution in the shortcut, stride on the bottleneck's 3x3
  (the "v1.5" placement that torchvision uses), ReLU;
- ResNet-D: 3x3 deep stem (in->32 s2, 32->32, 32->64), and a shortcut that average-pools before a
  stride-1 1x1 convolution;
- xresnet (fastai): the ResNet-D layout with the last batch norm of every block initialised to zero
  and a configurable activation (BWMS uses LeakyReLU(0.1)).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from jeoparda.models.registry import FeatureHeadModel, register

Act = Callable[[], nn.Module]


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, act: Act | None = None,
            zero_bn: bool = False) -> nn.Sequential:
    """Convolution (no bias) + batch norm (+ activation)."""
    bn = nn.BatchNorm2d(c_out)
    if zero_bn:
        nn.init.zeros_(bn.weight)
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), bn]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


def shortcut(c_in: int, c_out: int, stride: int, avg_down: bool) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    if avg_down:
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 \
            else nn.Identity()
        return nn.Sequential(pool, *conv_bn(c_in, c_out, 1) if c_in != c_out else [])
    return conv_bn(c_in, c_out, 1, stride)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, act: Act, avg_down: bool, zero_init: bool):
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(conv_bn(c_in, width, 3, stride, act), conv_bn(width, c_out, 3, zero_bn=zero_init))
        self.shortcut = shortcut(c_in, c_out, stride, avg_down)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, act: Act, avg_down: bool, zero_init: bool):
        nn.Module.__init__(self)
        c_out = width * self.expansion
        self.body = nn.Sequential(conv_bn(c_in, width, 1, 1, act), conv_bn(width, width, 3, stride, act),
                                  conv_bn(width, c_out, 1, zero_bn=zero_init))
        self.shortcut = shortcut(c_in, c_out, stride, avg_down)
        self.act = act()


def make_stages(block: type[BasicBlock], layers: tuple[int, ...], c_in: int, act: Act,
                avg_down: bool, zero_init: bool) -> tuple[nn.Sequential, int]:
    """The four residual stages (widths 64, 128, 256, 512); returns them and their output width."""
    stages = []
    for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers)):
        blocks = []
        for j in range(n):
            blocks.append(block(c_in, width, 2 if (j == 0 and i > 0) else 1, act, avg_down, zero_init))
            c_in = width * block.expansion
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages), c_in


def deep_stem(in_chans: int, act: Act, first_stride: int = 2) -> nn.Sequential:
    """ResNet-D stem: three 3x3 convolutions (in->32, 32->32, 32->64), then max-pool."""
    return nn.Sequential(conv_bn(in_chans, 32, 3, first_stride, act), conv_bn(32, 32, 3, 1, act),
                         conv_bn(32, 64, 3, 1, act), nn.MaxPool2d(3, 2, 1))


def classic_stem(in_chans: int, act: Act) -> nn.Sequential:
    return nn.Sequential(conv_bn(in_chans, 64, 7, 2, act), nn.MaxPool2d(3, 2, 1))


class ResNet(FeatureHeadModel):
    """Stem, four stages, global average pool, linear classifier."""

    def __init__(self, block: type[BasicBlock], layers: tuple[int, ...], in_chans: int = 12,
                 num_classes: int = 19, variant: str = "standard"):
        super().__init__()
        act: Act = lambda: nn.ReLU(inplace=True)  # noqa: E731
        deep = variant == "d"
        self.stem = deep_stem(in_chans, act) if deep else classic_stem(in_chans, act)
        self.stages, self.num_features = make_stages(block, layers, 64, act, avg_down=deep, zero_init=False)
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def init_weights(model: nn.Module) -> None:
    """He initialisation of convolutions; batch norms that were zeroed on purpose stay zero."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


@register("resnet18", "ResNet-18 (He et al. 2016), 12-band first convolution")
def resnet18(in_chans: int = 12, num_classes: int = 19) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_chans, num_classes)


@register("resnet50", "ResNet-50 (He et al. 2016), 12-band first convolution")
def resnet50(in_chans: int = 12, num_classes: int = 19) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_chans, num_classes)


@register("resnet50d", "ResNet-50-D (Bag of Tricks, He et al. 2019): deep stem, avg-pool shortcut")
def resnet50d(in_chans: int = 12, num_classes: int = 19) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_chans, num_classes, variant="d")
