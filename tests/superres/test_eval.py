import json

import numpy as np
import torch

from jeoparda.cli import main
from jeoparda.sentinel2 import BAND_NAMES
from jeoparda.superres.data import load_split
from jeoparda.superres.evaluate import evaluate
from jeoparda.superres.network import SRPair


def test_a_network_that_adds_nothing_scores_as_bicubic(archive_master):
    pair = SRPair(4, 1)
    for net in pair.nets.values():
        torch.nn.init.zeros_(net.tail.weight)
        torch.nn.init.zeros_(net.tail.bias)
    figures = evaluate(pair, load_split(archive_master, "test", 3), 0.3)
    for group in ("20m", "60m"):
        for metric in ("rmse", "sre", "sam"):
            assert np.isclose(figures[f"{metric}_{group}"], figures[f"bicubic_{metric}_{group}"], rtol=1e-4)
        assert abs(figures[f"rmse_{group}_reduction"]) < 1e-4
        # bilinear blurs more than bicubic on these fields
        assert figures[f"bilinear_rmse_{group}"] != figures[f"bicubic_rmse_{group}"]


def test_eval_cli_prints_tables_and_one_json_line(archive_master, dataset, sr_model, capsys):
    assert main(["sr", "eval", "--model", str(sr_model), "--data", str(dataset), "--patches", "3", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert figures["patches"] == 3 and figures["split"] == "test"
    coarse = [b for b in BAND_NAMES if b not in ("B02", "B03", "B04", "B08")]
    for method in ("", "bicubic_", "bilinear_"):
        for key in ("rmse_20m", "sre_20m", "sam_20m", "rmse_60m", "sre_60m", "sam_60m"):
            assert isinstance(figures[method + key], float)
        for band in coarse:
            assert f"{method}rmse_{band}" in figures and f"{method}sre_{band}" in figures
    assert any(" bicubic" in line and "model RMSE" in line for line in out)
    # the archive and its converted data set give the same figures (un-interpolation within rounding)
    assert main(["sr", "eval", "--model", str(sr_model), "--data", str(archive_master), "--patches", "3",
                 "--json"]) == 0
    direct = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(direct["bicubic_rmse_20m"] - figures["bicubic_rmse_20m"]) < 0.05 * figures["bicubic_rmse_20m"]


def test_eval_refuses_a_checkpoint(dataset, tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "epoch": 1}, ckpt)
    assert main(["sr", "eval", "--model", str(ckpt), "--data", str(dataset)]) == 1
    assert "not a jeoparda super-resolution model" in capsys.readouterr().err


def test_full_resolution_against_a_known_truth(tmp_path, sr_model, capsys):
    from jeoparda.sources.synth import synthesize, truth_path
    from jeoparda.superres.data import native_patches
    from jeoparda.superres.evaluate import evaluate_full

    synthesize(tmp_path / "a", 10, seed=3, truth=True)
    named = list(native_patches(tmp_path / "a", "train", 2))
    pair = SRPair(4, 1)
    for net in pair.nets.values():
        torch.nn.init.zeros_(net.tail.weight)
        torch.nn.init.zeros_(net.tail.bias)
    truths = [np.load(truth_path(tmp_path / "a", n)) for n, _ in named]
    figures = evaluate_full(pair, zip([b for _, b in named], truths, strict=True))
    assert figures["full_patches"] == 2
    assert np.isclose(figures["full_rmse_20m"], figures["full_bicubic_rmse_20m"], rtol=1e-4)
    assert figures["full_bicubic_rmse_60m"] > 0
    # a truth equal to the bicubic estimate (clipped to uint16's range, as stored) scores zero error for bicubic
    from jeoparda.superres.pairs import GROUPS, SCALE, full_inputs

    fake = truths[0].astype(float)
    for g in GROUPS.values():
        fake[list(g.outputs)] = np.clip(full_inputs(g, named[0][1])[g.residual_channels] / SCALE, 0, 65535)
    assert evaluate_full(pair, [(named[0][1], fake)])["full_bicubic_rmse_20m"] < 1e-3

    args = ["sr", "eval", "--model", str(sr_model), "--data", str(tmp_path / "a"), "--split", "train",
            "--patches", "2", "--json"]
    assert main(args + ["--truth", str(tmp_path / "a" / "sr-truth")]) == 0
    out = capsys.readouterr().out
    assert "full resolution against the known 10 m truth" in out
    assert "full_rmse_60m" in json.loads(out.strip().splitlines()[-1])
    truth_path(tmp_path / "a", named[1][0]).unlink()
    assert main(args + ["--truth", str(tmp_path / "a" / "sr-truth")]) == 1
    assert f"no readable 10 m truth for patch {named[1][0]}" in capsys.readouterr().err
