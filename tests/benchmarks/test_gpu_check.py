"""benchmarks/gpu_check.py: the dry run passes every step on the CPU, a failing step is recorded with
its log and makes the exit status 1, and --help imports nothing heavy."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
STEPS = ["env", "data", "loader", "train", "ddp", "predict", "sr", "gpu_tests"]


def gpu_check(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_dry_run_passes_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    proc = gpu_check("--dry-run", "--out", str(out), timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["passed"] is True and summary["dry_run"] is True
    assert [s["name"] for s in summary["steps"]] == STEPS
    assert summary["machine"]["host"] and summary["machine"]["torch"] and "gpus" in summary["machine"]
    for step in summary["steps"]:
        assert step["status"] == "passed", step
        assert step["claims"] and all(Path(log).is_file() for log in step["logs"]), step
        for claim in step["claims"]:
            assert set(claim) >= {"name", "value", "target", "passed", "note"}
            assert claim["passed"] is True or (claim["passed"] is None and claim["note"]), claim
    claims = {c["name"]: c for c in summary["claims"]}
    assert claims["shards >= 95 % of synthetic (images/s)"]["note"] == "not measured (dry run)"
    target = claims["ResNet-50 bf16 images/s per GPU (design target)"]
    assert target["passed"] is None and target["counts"] is False and target["target"] == ">= 13,500"
    assert claims["replicas agree (run_end replica_sha256)"]["passed"] is True
    assert claims["manifest sr_model.device"]["value"] == "cpu"
    assert (out / "predict" / "map.tif").is_file() and (out / "runs" / "ddp" / "results.jsonl").is_file()
    assert "overall: PASSED" in proc.stdout and "[8/8] gpu_tests" in proc.stdout
    assert not Path(summary["work"]).exists()  # archives and shards do not stay behind


def test_a_failing_step_is_recorded_with_its_log_and_exit_status_1(tmp_path):
    out = tmp_path / "out"
    proc = gpu_check("--dry-run", "--steps", "loader", "--data", str(tmp_path / "no-such-data"), "--out", str(out),
                     timeout=300)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["passed"] is False
    (step,) = summary["steps"]
    assert step["name"] == "loader" and step["status"] == "failed"
    assert step["reason"].startswith("bench-loader exited")
    log = Path(step["log"])
    assert log.is_file() and log.parent == out / "logs"
    assert "bench loader --data" in log.read_text() and "no-such-data" in log.read_text()
    assert "overall: FAILED" in proc.stdout and f"(log: {log})" in proc.stdout


def test_unknown_step_is_refused():
    proc = gpu_check("--steps", "env,nope", timeout=60)
    assert proc.returncode == 2 and "unknown nope" in proc.stderr


def test_import_and_help_stay_light():
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('gpu_check', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); sys.modules['gpu_check'] = m; spec.loader.exec_module(m); "
            "heavy = {'torch', 'numpy', 'h5py', 'jeoparda'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code, str(SCRIPT)], check=True, timeout=60)
    proc = gpu_check("--help", timeout=60)
    assert proc.returncode == 0 and "--dry-run" in proc.stdout
