"""benchmarks/jube/jeoparda.yaml, checked statically (JUBE is not on PyPI): the YAML loads, every
pattern matches a real run's output, every command is a jeoparda command line jeoparda's own
parser accepts."""
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from jeoparda.cli import build_parser
from tests.training.test_train import train_cmd

REPO = Path(__file__).resolve().parents[2]
JUBE = yaml.safe_load((REPO / "benchmarks" / "jube" / "jeoparda.yaml").read_text())
# JUBE's own pattern macros (jube/conf.py): a floating point number, an integer, a word
MACROS = {"$jube_pat_fp": r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)", "$jube_pat_int": r"([+-]?\d+)",
          "$jube_pat_wrd": r"(\S+)"}


def values() -> dict[str, str]:
    out = {"jube_benchmark_home": str(REPO / "benchmarks" / "jube")}
    for pset in JUBE["parameterset"]:
        for p in pset["parameter"]:
            out[p["name"]] = str(p["_"]).split(",")[0]
    out["repo"] = out["repo"].replace("$jube_benchmark_home", out["jube_benchmark_home"])
    return out


def expand(text: str) -> str:
    for name, value in sorted(values().items(), key=lambda kv: -len(kv[0])):
        text = text.replace(f"${name}", value)
    return text


def test_the_benchmark_has_its_parts():
    assert {s["name"] for s in JUBE["step"]} == {"convert", "train", "report"}
    assert JUBE["analyser"][0]["analyse"]["step"] == "train"
    columns = JUBE["result"][0]["table"]["column"]
    assert {"images_per_s", "epoch_time_s", "time_to_target_s"} <= set(columns)


def test_every_command_is_a_valid_jeoparda_command_line():
    for step in JUBE["step"]:
        words = shlex.split(expand(step["do"]))
        words = words[words.index("jeoparda") + 1:]  # after srun and its options
        args = build_parser().parse_args(words)
        assert args.command == step["name"]
        if args.command == "train":
            assert Path(args.config[0]).is_file()  # the recipe the sweep names exists


def test_every_pattern_matches_a_real_runs_output(dataset, tmp_path):
    proc = subprocess.run(train_cmd(dataset, tmp_path / "run", "train.epochs=2", "train.max_steps=2",
                                    "dist.backend=single", "train.target=0.01"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    for pattern in JUBE["patternset"][0]["pattern"]:
        regex = pattern["_"]
        for macro, expansion in MACROS.items():
            regex = regex.replace(macro, expansion)
        found = re.search(regex, proc.stdout)
        assert found is not None, pattern["name"]
        if pattern.get("type") == "float":
            assert float(found.group(1)) >= 0
