"""The receptive field jeoparda measures bounds what a real pass depends on, on each side, and the
memory estimate follows the tensors a pass holds at once."""
import pytest
import torch
from torch import nn

from jeoparda.models import create_model
from jeoparda.models.footprint import (
    Field,
    activation_bytes_per_pixel,
    context_margin,
    receptive_field,
    working_bytes_per_pixel,
)
from jeoparda.models.registry import list_models


@pytest.mark.parametrize("layers,field", [
    ([nn.Conv2d(3, 4, 3, padding=1)], 3),
    ([nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)], 5),
    ([nn.Conv2d(3, 4, 3, padding=2, dilation=2)], 5),
    ([nn.Conv2d(3, 4, 1)], 1),
    ([nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 1, 1)], 5),  # max pooling reaches as far as its kernel
])
def test_field_of_plain_stacks_is_the_textbook_one(layers, field):
    measured = receptive_field(nn.Sequential(*layers), 3)
    assert measured.side == field and measured.above == measured.below and measured.local


def test_a_field_that_looks_only_up_gets_its_margin_above():
    causal = nn.Sequential(nn.ZeroPad2d((0, 0, 8, 0)), nn.Conv2d(3, 4, (9, 1)))  # rows r-8 .. r
    field = receptive_field(causal, 3)
    assert (field.above, field.below) == (8, 0)
    assert context_margin(field, 1) == 8  # covers the 8 rows above, not half of 9


def test_a_model_that_pools_the_whole_image_is_not_local():
    class Global(nn.Module):
        def forward(self, x):
            return x + x.mean(dim=(2, 3), keepdim=True)

    assert not receptive_field(nn.Sequential(nn.Conv2d(3, 4, 1), Global()), 3, largest=64).local


@pytest.mark.parametrize("name", ["fcn_maggiori", "fcn_resnet18"])
def test_a_real_pass_depends_on_no_pixel_outside_the_field(name):
    """Random weights, random input: the input gradient of any output pixel (two phases of the output
    grid) lies within the field on each side, and reaches most of it (the measure is not loose)."""
    torch.manual_seed(0)
    model = create_model(name, in_chans=12, num_classes=19).eval()
    field = receptive_field(model, 12)
    side = 2 * field.side + 64
    side += -side % 32
    stride = getattr(model, "stride", 1)
    widest = 0
    for phase in range(0, stride, max(1, stride // 2)):
        at = side // 2 + phase
        x = torch.randn(1, 12, side, side, requires_grad=True)
        model(x)[0, :, at, at].sum().backward()
        for reach in (x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten(),
                      x.grad[0].abs().sum(dim=(0, 1)).nonzero().flatten()):
            assert at - field.above <= int(reach.min()) and int(reach.max()) <= at + field.below
            widest = max(widest, int(reach.max() - reach.min()) + 1)
    assert field.side // 2 <= widest


def test_margin_is_the_longer_reach_rounded_up_to_the_stride():
    assert context_margin(Field(35, 39), 4) == 40
    assert context_margin(Field(280, 249), 32) == 288
    assert context_margin(Field(1, 1), 1) == 1


def test_activation_bytes_are_the_peak_of_live_tensors():
    assert activation_bytes_per_pixel(nn.Conv2d(12, 19, 1), 12) == 19 * 4
    two = nn.Sequential(nn.Conv2d(12, 8, 3, padding=1), nn.Conv2d(8, 4, 3, stride=2, padding=1))
    assert activation_bytes_per_pixel(two, 12) == (8 + 4 / 4) * 4  # both alive while the second runs
    chain = nn.Sequential(*[nn.Conv2d(8 if i else 12, 8, 1) for i in range(6)])
    assert activation_bytes_per_pixel(chain, 12) == 2 * 8 * 4  # each output freed once the next exists


@pytest.mark.parametrize("name", [entry.name for entry in list_models("dense")])
def test_every_dense_model_of_the_zoo_is_estimated_within_reach(name):
    """A dense model's working set per pixel stays a small multiple of its largest activation, so the
    default 1 GiB budget takes a patch with its context (fcn_resnet50 was refused by a sum of all
    layers)."""
    model = create_model(name, in_chans=12, num_classes=19)
    per_pixel = working_bytes_per_pixel(model, 12)
    assert per_pixel * (120 + 2 * 288) ** 2 < 2 ** 30 / 2
