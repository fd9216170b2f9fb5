"""What a dense model needs around and behind each pixel it labels: the context of input around it
(its receptive field) and the memory a forward pass holds, both without running it on real data.

The receptive field is measured, not derived from the layers (skips, shortcuts and upsampling outside
any module defeat a walk over them): a copy of the model with positive weights sees a positive probe,
and the input rows whose gradient reaches one stride of output rows are the field, above and below
(it need not be centred). With that much context each side, a window labels as one pass over the
whole map does (tests/inference/test_predict.py checks that for the FCNs of the
model zoo). A model whose field spans the whole probe (global pooling, group norm) is not local.

The memory is the peak of live tensors during one forward pass on the meta device (nothing is
computed or allocated): every tensor an operation creates counts from its creation until Python
frees it, as inference without gradients frees it.
"""
from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

PROBE_SIDE = 256  # input side of the meta-device pass that follows the live tensors
GiB = 2 ** 30
SLACK = 1.5  # kernels' workspaces and the allocator's rounding, over the live tensors


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


@dataclass(frozen=True)
class Field:
    """Input rows an output row depends on: ``above`` and ``below`` it (every phase of the output
    grid); ``local`` False when the field reached the probe's edge at its largest size."""
    above: int
    below: int
    local: bool = True

    @property
    def side(self) -> int:
        return self.above + self.below + 1


def receptive_field(model: nn.Module, in_chans: int, largest: int = 8192) -> Field:
    """The receptive field, measured: the input rows whose gradient reaches ``stride`` consecutive
    output rows (every phase of the output grid: upsampling mixes neighbours differently at each) of
    a positive copy of the model, on a probe narrow in width (a few strides) and doubled in height
    until the field lies inside it. Square kernels make the width's the same."""
    probe, stride = _positive_copy(model), output_stride(model)
    side = 16 * stride
    while True:
        x = torch.ones(1, in_chans, side, 2 * stride, requires_grad=True)
        first = side // 2
        probe(x)[0, :, first:first + stride].sum().backward()
        assert x.grad is not None
        rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
        low, high = int(rows.min()), int(rows.max())
        inside = low > 0 and high < side - 1
        if inside or side >= largest:
            # the rows of the group span every phase: the last reaches lowest above, the first below
            return Field(max(0, first + stride - 1 - low), max(0, high - first), local=inside)
        side *= 2


def context_margin(field: Field, stride: int) -> int:
    """Pixels of input context each side of a window so that its labels equal a whole pass: the
    longer reach of the field (above or below), rounded up to the output stride (windows are cut
    on the stride's grid, as one pass's is)."""
    return int(math.ceil(max(field.above, field.below) / stride) * stride)


class _LiveBytes(TorchDispatchMode):
    """Follows every tensor the operations create (views and in-place results share their base's
    memory and are not counted again) and keeps the peak of their bytes alive at once."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.seen: set[int] = set()

    def _free(self, key: int, size: int) -> None:
        self.live -= size
        self.seen.discard(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor._is_view():
                continue
            key = tensor.untyped_storage()._cdata
            if key in self.seen:
                continue
            size = tensor.untyped_storage().nbytes()
            self.seen.add(key)
            self.live += size
            self.peak = max(self.peak, self.live)
            weakref.finalize(tensor, self._free, key, size)
        return out


def _forward_peak(model: nn.Module, in_chans: int) -> tuple[float, int]:
    """Peak live bytes per input pixel of one forward pass without gradients (the input excluded),
    and the channels of its output (the scores), from a copy on the meta device."""
    meta = _bare_copy(model, "meta")
    x = torch.empty(1, in_chans, PROBE_SIDE, PROBE_SIDE, device="meta")
    counter = _LiveBytes()
    with torch.no_grad(), counter:
        out = meta(x)
        channels = int(out.shape[1])
        del out
    return counter.peak / PROBE_SIDE ** 2, channels


def activation_bytes_per_pixel(model: nn.Module, in_chans: int) -> float:
    """Peak bytes of the tensors one forward pass holds at once, per input pixel, without gradients
    (the input excluded), on a copy on the meta device."""
    return _forward_peak(model, in_chans)[0]


def working_bytes_per_pixel(model: nn.Module, in_chans: int) -> float:
    """What labelling holds per input pixel: the forward pass's peak with some slack, the float32
    input, and the scores' softmax, maximum and class index (as many scores as the model outputs)."""
    peak, classes = _forward_peak(model, in_chans)
    return SLACK * peak + 4 * in_chans + 8 * classes + 13


def default_budget() -> int:
    """Bytes of working set per model call: 1 GiB, or a quarter of the memory available if less."""
    try:
        with open("/proc/meminfo") as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return GiB
    return min(GiB, available // 4)


def crops_per_call(model: nn.Module, in_chans: int, crop_side: int, budget: int = 0) -> int:
    """How many ``crop_side`` squares one model call takes within ``budget`` bytes (0: the default)."""
    per_crop = working_bytes_per_pixel(model, in_chans) * crop_side ** 2
    return max(1, int((budget or default_budget()) // per_crop))
