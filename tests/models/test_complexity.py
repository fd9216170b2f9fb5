"""FLOPs of a training step per image: forward and backward, counted on a meta-device copy."""
import pytest
import torch

from jeoparda.models import create_model, list_models
from jeoparda.models.complexity import forward_flops, training_flops


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_training_step_is_forward_plus_about_twice_forward(name):
    # backward computes input and weight gradients (2x forward each conv), except the stem's input
    # gradient: between 2.5x and 3.1x the forward pass for a ResNet
    ratio = training_flops(name, 12, 19, 120) / forward_flops(create_model(name), 12, 120)
    assert 2.5 < ratio < 3.1


def test_scales_with_the_image_area_and_depends_on_the_channels():
    base = training_flops("fcn_maggiori", 12, 19, 32)
    assert training_flops("fcn_maggiori", 12, 19, 64) == pytest.approx(4 * base)  # no pooling rounding
    assert training_flops("fcn_maggiori", 12, 19, (32, 64)) == pytest.approx(2 * base)
    assert training_flops("resnet18", 12, 19, 240) == pytest.approx(4 * training_flops("resnet18", 12, 19, 120),
                                                                     rel=0.05)
    assert training_flops("resnet18", 10, 19, 120) < training_flops("resnet18", 12, 19, 120)


def test_counting_allocates_nothing_and_draws_no_random_numbers():
    # the trainer seeds its weights and its dropout streams: counting must not move the generator
    state = torch.get_rng_state()
    training_flops("bwms", 12, 5, 48)  # with dropout in train mode
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("name", [e.name for e in list_models()])
def test_every_model_of_the_zoo_can_be_counted_on_the_meta_device(name):
    # every training run counts its model: one that cannot be built or run on meta would fail them all
    assert training_flops(name, 12, 19, 32) > 0
