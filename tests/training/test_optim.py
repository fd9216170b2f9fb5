"""Optimisers learn, and the learning-rate schedule follows the recipes."""
import pytest
import torch

from jeoparda.config import TrainConfig
from jeoparda.training.optim import base_lr, build_optimizer, lr_factor


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lars", "lamb"])
def test_every_optimiser_fits_a_small_problem(name):
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x @ torch.randn(8, 3) > 0).float()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    lr = {"sgd": 0.5, "lars": 5.0}.get(name, 0.02)
    opt = build_optimizer(TrainConfig(optimizer=name, lr=lr, weight_decay=0.0), model, global_batch=256)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    first = loss_fn(model(x), y).item()
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first and all(torch.isfinite(p).all() for p in model.parameters())


def test_linear_scaling_warmup_step_and_cosine():
    cfg = TrainConfig(lr=0.1, lr_scaling="linear", lr_base_batch=256, warmup_epochs=5, schedule="cosine", epochs=15)
    assert base_lr(cfg, 1024) == pytest.approx(0.4)
    assert lr_factor(cfg, 0) == pytest.approx(0.1) and lr_factor(cfg, 2.5) == pytest.approx(0.55)
    assert lr_factor(cfg, 5) == pytest.approx(1.0) and lr_factor(cfg, 10) == pytest.approx(0.5)
    assert lr_factor(cfg, 15) == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(schedule="step", step_epochs=30, step_gamma=0.5)
    assert [lr_factor(step, e) for e in (0, 29.9, 30, 61)] == [1.0, 1.0, 0.5, 0.25]
    assert base_lr(step, 4096) == step.lr  # no scaling unless asked


@pytest.mark.parametrize("name,key", [("sgd", "momentum"), ("adam", "betas")])
def test_onecycle_warms_up_anneals_below_the_start_and_cycles_momentum(name, key):
    from jeoparda.training.optim import build_schedule

    cfg = TrainConfig(optimizer=name, lr=0.2, schedule="onecycle", epochs=10, weight_decay=0.0)
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(cfg, model, global_batch=32)
    schedule = build_schedule(cfg, opt, steps_per_epoch=10)
    lrs, moms = [], []
    for _ in range(100):
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        moms.append(group["momentum"] if key == "momentum" else group["betas"][0])
        opt.step()
        schedule.step()
    peak = max(range(100), key=lambda i: lrs[i])
    assert lrs[0] == pytest.approx(0.2 / 25) and max(lrs) == pytest.approx(0.2, rel=1e-3)
    assert 25 <= peak <= 35  # 30 % of the run warming up
    assert lrs[-1] < lrs[0] / 100  # annealed far below the start
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85, abs=1e-3)
    assert moms[-1] == pytest.approx(0.95, abs=1e-3)


def test_onecycle_resumes_from_its_state():
    from jeoparda.training.optim import build_schedule

    cfg = TrainConfig(optimizer="sgd", lr=0.1, schedule="onecycle", epochs=4)
    opts = [build_optimizer(cfg, torch.nn.Linear(2, 2), 8) for _ in range(2)]
    a, b = (build_schedule(cfg, o, 5) for o in opts)
    for _ in range(7):
        opts[0].step()
        a.step()
    b.load_state_dict(a.state_dict())
    opts[1].param_groups[0].update(lr=opts[0].param_groups[0]["lr"])
    for _ in range(5):
        for o, s in zip(opts, (a, b), strict=True):
            o.step()
            s.step()
    assert opts[0].param_groups[0]["lr"] == pytest.approx(opts[1].param_groups[0]["lr"])


def test_lamb_equals_the_written_out_rule():
    """Adam moments with bias correction, direction + weight decay, trust ratio ||w|| / ||d||,
    computed here in float64 by hand, against the optimiser over a few steps."""
    from jeoparda.training.optim import LAMB

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt = LAMB([w, b], lr=0.01, weight_decay=0.1)
    ref_w, ref_b = w.detach().clone(), b.detach().clone()
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in (("w", ref_w), ("b", ref_b))}
    for t in range(1, 6):
        gw, gb = torch.randn(4, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step()
        for key, ref, g in (("w", ref_w, gw), ("b", ref_b, gb)):
            m, v = state[key]
            m.mul_(0.9).add_(0.1 * g)
            v.mul_(0.999).add_(0.001 * g * g)
            d = (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)).sqrt() + 1e-6)
            if key == "w":
                d = d + 0.1 * ref
                ref -= 0.01 * (ref.norm() / d.norm()) * d
            else:
                ref -= 0.01 * d
        assert torch.allclose(w, ref_w, atol=1e-12) and torch.allclose(b, ref_b, atol=1e-12)
