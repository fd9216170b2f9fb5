"""The receptive field jeoparda measures bounds what a real pass depends on, and the activation
count is what the layers output."""
import pytest
import torch
from torch import nn

from jeoparda.models import create_model
from jeoparda.models.footprint import activation_bytes_per_pixel, context_margin, receptive_field


@pytest.mark.parametrize("layers,field", [
    ([nn.Conv2d(3, 4, 3, padding=1)], 3),
    ([nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)], 5),
    ([nn.Conv2d(3, 4, 3, padding=2, dilation=2)], 5),
    ([nn.Conv2d(3, 4, 1)], 1),
])
def test_field_of_plain_stacks_is_the_textbook_one(layers, field):
    assert receptive_field(nn.Sequential(*layers), 3) == field


@pytest.mark.parametrize("name", ["fcn_maggiori", "fcn_resnet18"])
def test_a_real_pass_depends_on_no_pixel_outside_the_field(name):
    """Random weights, random input: the input gradient of any output pixel (every phase of the output
    grid) lies within the field, and reaches most of it (the measure is not a loose bound)."""
    torch.manual_seed(0)
    model = create_model(name, in_chans=12, num_classes=19).eval()
    field = receptive_field(model, 12)
    side = 2 * field + 64
    side += -side % 32
    stride = getattr(model, "stride", 1)
    widest = 0
    for phase in range(0, stride, max(1, stride // 2)):
        x = torch.randn(1, 12, side, side, requires_grad=True)
        model(x)[0, :, side // 2 + phase, side // 2 + phase].sum().backward()
        rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
        cols = x.grad[0].abs().sum(dim=(0, 1)).nonzero().flatten()
        for reach in (rows, cols):
            widest = max(widest, int(reach.max() - reach.min()) + 1)
    assert field // 2 <= widest <= field


def test_margin_is_half_the_field_plus_a_stride_on_the_stride():
    assert context_margin(68, 4) == 40
    assert context_margin(463, 32) == 288
    assert context_margin(3, 1) == 3


def test_activation_bytes_count_every_layer_output():
    assert activation_bytes_per_pixel(nn.Conv2d(12, 19, 1), 12) == 19 * 4
    two = nn.Sequential(nn.Conv2d(12, 8, 3, padding=1), nn.Conv2d(8, 4, 3, stride=2, padding=1))
    assert activation_bytes_per_pixel(two, 12) == (8 + 4 / 4) * 4
