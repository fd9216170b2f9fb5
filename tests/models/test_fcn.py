"""Deterministic FCNs: under torch.use_deterministic_algorithms(True) the FCNs and the segmentation
loss run without the kernels CUDA refuses in that mode (bilinear upsampling's backward, 2-D NLL)
and compute what the fast kernels compute."""
import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from jeoparda.models import create_model, list_models
from jeoparda.models.upsample import bilinear, interpolation_weights, matmul_bilinear
from jeoparda.tasks.segmentation import segmentation_loss

DENSE = [e.name for e in list_models("dense")]
#: aten kernels without a deterministic CUDA implementation (forward or backward)
REFUSED = ("upsample_bilinear2d", "nll_loss")


@contextlib.contextmanager
def deterministic(on=True):
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(on)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


class OpLog(TorchDispatchMode):
    """Names of the aten ops dispatched, backward ones included."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.__name__)
        return func(*args, **(kwargs or {}))


def close(got, want, atol=1e-5):
    """Equal within float rounding, relative to the size of the values (gradients sum many terms)."""
    torch.testing.assert_close(got, want, rtol=1e-5, atol=atol * max(1.0, want.abs().max().item()))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size_in,size_out", [((4, 4), (15, 15)), ((2, 3), (30, 17)), ((15, 15), (120, 120)),
                                              ((7, 5), (3, 2)), ((1, 1), (5, 5)), ((6, 6), (6, 6))])
def test_matrix_upsampling_equals_interpolate(size_in, size_out, align_corners):
    x = torch.randn(2, 3, *size_in, generator=torch.Generator().manual_seed(0), requires_grad=True)
    want = torch.nn.functional.interpolate(x, size=size_out, mode="bilinear", align_corners=align_corners)
    got = matmul_bilinear(x, size_out, align_corners)
    close(got, want)
    upstream = torch.randn_like(want)
    close(torch.autograd.grad(got, x, upstream)[0], torch.autograd.grad(want, x, upstream)[0])


def test_interpolation_rows_are_convex_weights():
    weights = interpolation_weights(15, 120)
    assert weights.shape == (120, 15) and (weights >= 0).all()
    assert torch.allclose(weights.sum(1), torch.ones(120, dtype=torch.float64))
    assert (weights > 0).sum(1).max() <= 2  # two taps per output sample


def test_fast_path_is_the_interpolation_kernel():
    x = torch.randn(1, 2, 4, 4)
    with deterministic(False), OpLog() as log:
        bilinear(x, (8, 8))
    assert "upsample_bilinear2d.default" in log.names


def test_matrices_built_under_inference_mode_serve_training():
    with torch.inference_mode():
        matmul_bilinear(torch.randn(1, 1, 3, 3), (9, 9))
    x = torch.randn(1, 1, 3, 3, requires_grad=True)
    matmul_bilinear(x, (9, 9)).sum().backward()  # the cached matrices are saved for backward
    assert x.grad is not None


def forward_backward(model, x, target):
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = segmentation_loss(out, target)
    loss.backward()
    return out.detach(), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def case(k=5, size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 12, size, size, generator=g)
    target = torch.randint(0, k, (2, size, size), generator=g).to(torch.uint8)
    target[:, :5, :7] = 255  # unlabelled pixels
    return x, target


@pytest.mark.parametrize("name", DENSE)
def test_deterministic_path_equals_the_fast_path(name):
    torch.manual_seed(0)
    model = create_model(name, in_chans=12, num_classes=5)
    x, target = case()
    with deterministic(False):
        fast = forward_backward(model, x, target)
    with deterministic(True):
        exact = forward_backward(model, x, target)
    close(exact[0], fast[0])
    close(exact[1], fast[1])
    for key, grad in fast[2].items():
        close(exact[2][key], grad, atol=1e-4)  # batch norm divides by small spreads: more rounding


@pytest.mark.parametrize("name", DENSE)
def test_deterministic_training_step_avoids_the_refused_kernels(name):
    torch.manual_seed(0)
    model = create_model(name, in_chans=12, num_classes=5)
    x, target = case(size=44)  # not a multiple of 32: the FCN-ResNets' grids do not align
    with deterministic(True), OpLog() as log:
        forward_backward(model, x, target)
    refused = sorted(n for n in log.names if n.startswith(REFUSED))
    assert not refused, refused


def test_matrix_upsampling_traces_whole_under_torch_compile():
    x = torch.randn(1, 2, 3, 3)
    with deterministic(True):
        compiled = torch.compile(lambda t: bilinear(t, (9, 9)), backend="eager", fullgraph=True)
        close(compiled(x), matmul_bilinear(x, (9, 9)))
