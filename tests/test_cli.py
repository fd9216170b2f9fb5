"""The command line: every --help explains itself, bad input gives one clear line."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from jeoparda.cli import build_parser, main

SUBCOMMANDS = ["synth", "convert", "inspect", "train", "report", "models", "bench", "project", "sr", "config"]


def test_python_dash_m_and_top_level_help():
    proc = subprocess.run([sys.executable, "-m", "jeoparda", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for name in SUBCOMMANDS:
        assert name in proc.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_explains(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices[name]._actions
                  if a.dest not in ("help",))
    assert len(text.split()) > 40 and action.help


def test_missing_archive_is_one_line(tmp_path, capsys):
    assert main(["convert", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"jeoparda: error: {tmp_path / 'nope'}: archive folder not found"]


def test_bad_split_dir(archive, tmp_path, capsys):
    (tmp_path / "splits").mkdir()
    rc = main(["convert", "--source", str(archive), "--out", str(tmp_path / "o"),
               "--splits", str(tmp_path / "splits")])
    assert rc == 1
    assert f"{tmp_path / 'splits' / 'train.csv'}: split file not found" in capsys.readouterr().err


def test_synth_refuses_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["synth", "--out", str(tmp_path), "--patches", "2"]) == 1
    assert "not empty" in capsys.readouterr().err


def test_bad_numbers_are_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "--source", "a", "--out", "b", "--shard-size", "0"])
    assert info.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_output_path_that_is_a_file(archive, tmp_path, capsys):
    (tmp_path / "o").write_text("a file, not a folder")
    assert main(["convert", "--source", str(archive), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"jeoparda: error: {tmp_path / 'o'}: File exists" in err and "Traceback" not in err


def test_models_lists_every_model(capsys):
    from jeoparda.models import list_models

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for entry in list_models():
        assert entry.name in out
    assert "11,265,115" in out


@pytest.mark.parametrize("layout,expected", [
    ("v1", {"BigEarthNet-v1.0", "splits", "patches_with_seasonal_snow.csv", "patches_with_cloud_and_shadow.csv"}),
    ("v2", {"BigEarthNet-S2", "BigEarthNet-S1", "Reference_Maps", "metadata.parquet",
            "metadata_for_patches_with_snow_cloud_or_shadow.parquet"}),
    ("lmdb", {"BigEarthNet-lmdb", "Reference_Maps", "metadata.parquet",
              "metadata_for_patches_with_snow_cloud_or_shadow.parquet"}),
])
def test_synth_writes_each_layout_that_convert_detects(tmp_path, capsys, layout, expected):
    from jeoparda.sources.detect import detect_format

    assert main(["synth", "--out", str(tmp_path / "a"), "--patches", "12", "--layout", layout]) == 0
    assert {p.name for p in (tmp_path / "a").iterdir()} == expected
    assert detect_format(tmp_path / "a") == {"v1": "bigearthnet-v1", "v2": "bigearthnet-v2",
                                              "lmdb": "rico-lmdb"}[layout]
    assert "wrote 12 patches" in capsys.readouterr().out


def test_convert_help_names_every_source_option(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = capsys.readouterr().out
    for option in ("--format", "--with-s1", "--reference-maps", "--include-noisy", "--present-only",
                   "bigearthnet-v2", "rico-lmdb", "1 %"):
        assert option in text, option


@pytest.mark.parametrize("action", ["train", "eval"])
def test_sr_actions_explain_themselves(action, capsys):
    with pytest.raises(SystemExit) as info:
        main(["sr", action, "--help"])
    assert info.value.code == 0 and "Wald's protocol" in capsys.readouterr().out
    assert main(["sr"]) == 2  # no action: the help, and a usage status


def test_train_help_lists_every_shipped_recipe(capsys):
    recipes = sorted(p.name for p in (Path(__file__).parents[1] / "benchmarks" / "configs").glob("*.yaml"))
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out.replace("\n", " ")
    assert recipes and all(name in text for name in recipes), recipes


def test_config_get_prints_one_resolved_value(tmp_path, capsys):
    layer = tmp_path / "run.yaml"
    layer.write_text("dist:\n  backend: horovod\ntrain:\n  batch_size: 48\n")
    cases = [(["dist.backend"], "ddp"), (["dist.backend", "--config", str(layer)], "horovod"),
             (["dist.backend", "--config", str(layer), "--set", "dist.backend=single"], "single"),
             (["train.batch_size", "--config", str(layer)], "48"), (["data.stage"], "false"),
             (["train.compile"], ""),
             (["data.augment", "--set", "data.augment.rot90=false"], "flip: true\nrot90: false")]
    for argv, expected in cases:
        assert main(["config", "get", *argv]) == 0
        out = capsys.readouterr().out
        assert out.startswith(expected + "\n"), (argv, out)
    assert main(["config", "get", "dist.backnd"]) == 1
    err = capsys.readouterr().err
    assert "unknown key" in err and "did you mean dist.backend?" in err and len(err.splitlines()) == 1
    assert main(["config", "get", "train.epochs", "--set", "train.epochs=x"]) == 1
    assert "train.epochs must be an integer" in capsys.readouterr().err


def test_bench_loader_takes_config_and_set_and_its_flags_win(tmp_path, capsys):
    layer = tmp_path / "loader.yaml"
    layer.write_text("data:\n  backend: synthetic\n  synthetic_patches: 16\n  workers: 0\ntrain:\n  batch_size: 4\n")
    base = ["bench", "loader", "--config", str(layer), "--steps", "1", "--warmup", "0", "--json"]
    assert main(base) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["backend"], result["batch_size"]) == ("synthetic", 4)
    assert main([*base, "--set", "train.batch_size=2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["batch_size"] == 2
    assert main([*base, "--set", "train.batch_size=2", "--batch-size", "3"]) == 0  # a given flag overrides
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["batch_size"] == 3
    assert main([*base, "--set", "data.backnd=torch"]) == 1
    assert "did you mean data.backend?" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["train", "--out", "RUN"], ["bench", "train", "--out", "RUN"],
                                     ["bench", "loader"], ["config", "get", "train.task"]])
def test_an_unknown_task_is_refused_before_anything_starts(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--set", "train.task=nothing", "--set", "data.backend=synthetic"]) == 1
    err = capsys.readouterr().err
    assert "train.task: 'nothing' is not one of multilabel, singlelabel, segmentation" in err
    assert list(tmp_path.iterdir()) == []  # no run folder, no log
