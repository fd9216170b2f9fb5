"""What a dense model needs around and behind each pixel it labels: the margin of input context
(its receptive field) and the memory of its activations, both without running it on real data.

The receptive field is measured, not derived from the layers (skips, shortcuts and upsampling outside
any module defeat a walk over them): a copy of the model with positive weights sees a positive probe,
and the input rows whose gradient reaches one output row are the field. With half of it (plus one
output stride) of context each side, a window labels as one pass over the whole map does
(tests/inference/test_predict.py checks that for the FCNs of the model zoo).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

PROBE_SIDE = 128  # input side of the meta-device pass that counts activations
GiB = 2 ** 30


def output_stride(model: nn.Module) -> int:
    """The stride a dense model's input must be a multiple of (its ``stride`` attribute, else 1)."""
    stride = getattr(model, "stride", 1)
    return stride if isinstance(stride, int) and stride > 0 else 1


def _bare_copy(model: nn.Module, device: str) -> nn.Module:
    """A copy of ``model`` on ``device`` in eval mode without the hooks of the original (a caller's
    hook must not see the probes)."""
    clone = copy.deepcopy(model).to(device).eval()
    for module in clone.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    return clone


def _positive_copy(model: nn.Module) -> nn.Module:
    """A CPU copy whose every path carries a positive signal: weights 1/fan-in, no biases, batch norm
    as the identity, max pooling as average pooling of the same geometry. With a positive input no
    ReLU closes, so every pixel in the field has a gradient."""
    probe = _bare_copy(model, "cpu").float()
    for parent in list(probe.modules()):  # max pooling routes a gradient to one input: average instead
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
    with torch.no_grad():
        for module in probe.modules():
            weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
            elif isinstance(weight, torch.Tensor) and weight.dim() > 1:
                weight.fill_(1.0 / weight[0].numel())
            elif isinstance(weight, torch.Tensor):
                weight.fill_(1.0)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
    return probe


def receptive_field(model: nn.Module, in_chans: int, largest: int = 8192) -> int:
    """The receptive field's side in input pixels, measured: the input rows whose gradient reaches
    ``stride`` consecutive output rows (every phase of the output grid: upsampling mixes neighbours
    differently at each) of a positive copy of the model, on a probe narrow in width (a few strides)
    and doubled in height until the field lies inside it. Square kernels make the width's the same."""
    probe, stride = _positive_copy(model), output_stride(model)
    side = 16 * stride
    while True:
        x = torch.ones(1, in_chans, side, 2 * stride, requires_grad=True)
        probe(x)[0, :, side // 2:side // 2 + stride].sum().backward()
        assert x.grad is not None
        rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
        low, high = int(rows.min()), int(rows.max())
        if (low > 0 and high < side - 1) or side >= largest:
            return high - low + 1
        side *= 2


def context_margin(field: int, stride: int) -> int:
    """Pixels of input context each side of a window so that its labels equal a whole pass: half the
    receptive field ``field`` plus one output stride (the grid's alignment), rounded up to the stride."""
    need = math.ceil(field / 2) + stride
    return int(math.ceil(need / stride) * stride)


def activation_bytes_per_pixel(model: nn.Module, in_chans: int, element_bytes: int = 4) -> float:
    """Bytes of every layer's output per input pixel in one forward pass (a bound of what inference
    holds at once): counted on a copy on the meta device, so nothing is computed or allocated."""
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    meta = _bare_copy(model, "meta")
    hooks = [m.register_forward_hook(count) for m in meta.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            meta(torch.empty(1, in_chans, PROBE_SIDE, PROBE_SIDE, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return total * element_bytes / PROBE_SIDE ** 2


def working_bytes_per_pixel(model: nn.Module, in_chans: int, num_classes: int) -> float:
    """What labelling holds per input pixel: every activation, the float32 input, and the scores with
    their softmax (:func:`activation_bytes_per_pixel` plus the ends)."""
    return activation_bytes_per_pixel(model, in_chans) + 4 * in_chans + 8 * num_classes + 5


def default_budget() -> int:
    """Bytes of working set per model call: 1 GiB, or a quarter of the memory available if less."""
    try:
        with open("/proc/meminfo") as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return GiB
    return min(GiB, available // 4)


def crops_per_call(model: nn.Module, in_chans: int, num_classes: int, crop_side: int, budget: int = 0) -> int:
    """How many ``crop_side`` squares one model call takes within ``budget`` bytes (0: the default)."""
    per_crop = working_bytes_per_pixel(model, in_chans, num_classes) * crop_side ** 2
    return max(1, int((budget or default_budget()) // per_crop))
