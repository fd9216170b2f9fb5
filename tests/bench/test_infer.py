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
