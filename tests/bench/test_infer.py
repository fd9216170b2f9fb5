"""bench infer: the patch-based pass labels what the one-pass FCN labels (exactly, for a network
that looks at one pixel), and the command refuses classification models."""
import json

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.bench.infer_bench import fcn_pass, patch_pass, run
from jeoparda.cli import main


def test_patch_based_equals_one_pass_for_a_pointwise_network():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(12, 5, 1).eval()
    mosaic = torch.randn(12, 96, 96)
    assert torch.equal(fcn_pass(model, mosaic), patch_pass(model, mosaic, window=16, context=32, batch=7))


def test_run_reports_both_passes(capsys):
    result = run(torch.nn.Conv2d(12, 3, 3, padding=1), patches=1, accel=Accelerator(), window=24,
                 context=40, batch=8)
    assert result["pixels"] == 120 * 120 and result["fcn_s"] > 0 and result["patch_s"] > 0
    assert result["speedup"] == result["patch_s"] / result["fcn_s"]
    assert main(["bench", "infer", "--patches", "1", "--repeat", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["patches"] == 1
    assert main(["bench", "infer", "--model", "resnet18"]) == 1
    assert "resnet18 is a classification model" in capsys.readouterr().err


def test_infer_on_a_gpu_and_batched_windows(standin_gpu):
    from jeoparda.devices import parse_device

    result = run(torch.nn.Conv2d(12, 3, 3, padding=1), patches=1, accel=parse_device("cuda"), window=24,
                 context=40, batch=8)
    assert result["device"] == "cuda" and result["device_name"] == "NVIDIA H100 80GB HBM3"
    assert [w for w in standin_gpu.host_waits if w[0] == "device"]  # clocks read after synchronising


def test_patch_pass_runs_the_model_once_per_batch_of_windows():
    """The patch-based baseline is timed as an algorithm: one model call per batch of crops and no
    per-window copy back (25 windows in batches of 8: 4 calls)."""
    calls = []
    model = torch.nn.Conv2d(12, 3, 1)
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    mosaic = torch.randn(12, 120, 120)
    out = patch_pass(model, mosaic, window=24, context=40, batch=8)
    assert calls == [8, 8, 8, 1] and torch.equal(out, fcn_pass(model, mosaic))


def test_the_patch_baseline_batches_its_crops_by_the_memory_rule_of_predict():
    """Without --batch, the patch-based pass takes as many crops per call as the budget holds, by the
    rule jeoparda predict sizes its batches with."""
    from jeoparda.models.footprint import working_bytes_per_pixel

    model = torch.nn.Conv2d(12, 3, 1)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    budget = int(7.5 * working_bytes_per_pixel(model, 12) * 40 ** 2)
    result = run(model, patches=1, accel=Accelerator(), window=24, context=40, max_memory=budget)
    assert result["batch"] == 7
    assert calls == [1, 7, 7, 7, 4]  # the one pass, then 25 crops of 40 x 40 in calls of at most 7
