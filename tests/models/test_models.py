"""The model zoo: shapes, parameter counts, BWMS band use, feature/head split, DDP, compile."""

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from jeoparda.errors import JeopardaError
from jeoparda.models import create_model, list_models
from jeoparda.models.complexity import count_parameters, forward_flops
from jeoparda.sentinel2 import BAND_INDEX

NAMES = [e.name for e in list_models("classification")]


def batch(n=2, seed=0):
    return torch.randn(n, 12, 120, 120, generator=torch.Generator().manual_seed(seed))


def test_registry_has_the_issue_models():
    assert set(NAMES) == {"resnet18", "resnet50", "resnet50d", "bwms", "bwms50", "cnn3d"}
    with pytest.raises(JeopardaError, match="unknown model 'vit'.*resnet18"):
        create_model("vit")


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, in_chans=12, num_classes=19)
    out = model(batch())
    assert out.shape == (2, 19) and torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # The first layer and the classifier learn from the first step (zero-initialised residual
    # branches of the xresnet trunks may not, by design).
    assert grads[0].abs().sum() > 0 and grads[-1].abs().sum() > 0


@pytest.mark.parametrize("name, paper, exact", [("resnet18", 11.2e6, None), ("resnet50", 23.6e6, None),
                                                ("bwms", 11.3e6, 11_265_115), ("cnn3d", 1.75e6, None)])
def test_parameter_counts_match_the_bwms_paper(name, paper, exact):
    n = count_parameters(create_model(name))
    assert abs(n - paper) / paper < 0.01
    if exact:
        assert n == exact  # the authors' code


def test_other_class_and_band_counts():
    assert create_model("resnet18", in_chans=4, num_classes=43)(torch.randn(1, 4, 64, 64)).shape == (1, 43)
    with pytest.raises(JeopardaError, match="12-band"):
        create_model("bwms", in_chans=10)


def test_resnet50d_is_the_d_variant():
    d, plain = create_model("resnet50d"), create_model("resnet50")
    assert [m.kernel_size for m in d.stem.modules() if isinstance(m, torch.nn.Conv2d)] == [(3, 3)] * 3
    first = d.stages[1][0]
    assert isinstance(first.shortcut[0], torch.nn.AvgPool2d) and first.shortcut[1].stride == (1, 1)
    assert first.body[1][0].stride == (2, 2) and first.body[0][0].stride == (1, 1)
    assert plain.stages[1][0].shortcut[0].stride == (2, 2)


@pytest.mark.parametrize("name", ["bwms", "bwms50"])
def test_bwms_ignores_b01_and_b09(name):
    model = create_model(name).eval()
    x = batch()
    y = x.clone()
    for band in ("B01", "B09"):
        y[:, BAND_INDEX[band]] = torch.randn(2, 120, 120) * 100
    with torch.no_grad():
        assert torch.equal(model(x), model(y))
        z = x.clone()
        z[:, BAND_INDEX["B05"]] += 1.0
        assert not torch.allclose(model(x), model(z))


def test_bwms_band_wise_convolution_is_grouped():
    model = create_model("bwms")
    convs = list(model.bands10.convs) + list(model.bands20.convs)
    assert [c.kernel_size[0] for c in model.bands10.convs] == [1, 3, 5, 7]
    assert all(c.groups == c.in_channels == c.out_channels and c.bias is None for c in convs)
    assert [c.stride for c in model.bands10.convs] == [(2, 2)] * 4
    assert [c.stride for c in model.bands20.convs] == [(1, 1)] * 4
    last_bns = [blk.body[-1][1] for stage in model.stages for blk in stage]
    assert all(not bn.weight.detach().any() for bn in last_bns)


@pytest.mark.parametrize("name", NAMES)
def test_features_and_head_compose_to_forward(name):
    model = create_model(name).eval()
    x = batch()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features
        assert torch.allclose(model.forward_head(feats), model(x), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last(name):
    model = create_model(name).eval()
    x = batch()
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, out, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def process_group(tmp_path_factory):
    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("name", NAMES)
def test_works_under_ddp(name, process_group):
    torch.manual_seed(0)
    model = create_model(name)
    ref = create_model(name)
    ref.load_state_dict(model.state_dict())
    ddp = DistributedDataParallel(model)
    x = batch()
    torch.manual_seed(1)  # same dropout masks in both
    ddp(x).sum().backward()
    torch.manual_seed(1)
    ref(x).sum().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_traces_whole_under_torch_compile(name):
    torch._dynamo.reset()
    model = create_model(name)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # no graph breaks
    out = compiled(batch())
    out.sum().backward()
    assert out.shape == (2, 19) and all(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_bwms_inductor_matches_eager():
    torch._dynamo.reset()
    model = create_model("bwms").eval()
    x = batch()
    with torch.no_grad():
        assert torch.allclose(torch.compile(model)(x), model(x), atol=1e-4, rtol=1e-4)


def test_flops_are_positive_and_ordered():
    flops = {n: forward_flops(create_model(n)) for n in ("resnet18", "resnet50")}
    assert 0 < flops["resnet18"] < flops["resnet50"]
    # ResNet-50's 4.1 GMACs at 224x224 scale to about 2.6 GFLOPs at 120x120 with 12 bands.
    assert 2.4e9 < flops["resnet50"] < 3.0e9


DENSE = [e.name for e in list_models("dense")]


def test_dense_models_are_registered_apart():
    assert set(DENSE) == {"fcn_maggiori", "fcn_resnet18", "fcn_resnet50"}


@pytest.mark.parametrize("name", DENSE)
@pytest.mark.parametrize("size", [120, 240, 360])
def test_dense_models_map_any_size_to_itself(name, size):
    torch.manual_seed(0)
    model = create_model(name, in_chans=12, num_classes=19).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 12, size, size))
    assert out.shape == (1, 19, size, size) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", DENSE)
def test_dense_models_learn_from_every_layer(name):
    torch.manual_seed(0)
    model = create_model(name, in_chans=12, num_classes=5)
    target = torch.randint(0, 5, (2, 120, 120))
    torch.nn.functional.cross_entropy(model(batch()), target).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_maggiori_layers_are_the_papers():
    model = create_model("fcn_maggiori")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (12, 12), (4, 4)), (112, (4, 4), (1, 1)), (80, (3, 3), (1, 1)), (19, (9, 9), (1, 1))]
    deconv = model.upsample
    assert (deconv.kernel_size, deconv.stride) == ((8, 8), (4, 4))
