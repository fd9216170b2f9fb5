"""ReFrame itself runs the checks with the local scheduler on this machine (tiny synthetic data,
ResNet18, 1 and 2 processes via mpirun) and reports the performance values."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.convert.test_run_mpi import mpi_env

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.mpi


def test_reframe_runs_the_checks_and_reports_performance(dataset, tmp_path):
    reframe = shutil.which("reframe", path=os.path.dirname(sys.executable))
    if reframe is None:
        pytest.skip("reframe-hpc not installed (pip install 'jeoparda[test]')")
    env = {**mpi_env(), "JEOPARDA_RFM_MODELS": "resnet18", "JEOPARDA_RFM_RANKS": "1 2", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [reframe, "-C", str(REPO / "benchmarks/reframe/config_local.py"), "-c",
         str(REPO / "benchmarks/reframe/jeoparda_checks.py"), "-r", "-S", f"data_path={dataset}", "-S", "epochs=2",
         "-S", "extra=train.batch_size=4 train.max_steps=2 data.workers=0 train.threads=1 train.target=0.01",
         "--report-file", str(tmp_path / "report.json")],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    cases = {c["ranks"]: c for c in json.loads((tmp_path / "report.json").read_text())["runs"][0]["testcases"]}
    assert sorted(cases) == [1, 2] and all(c["result"] == "pass" for c in cases.values())
    for ranks, case in cases.items():
        perf = {k.split(":")[-1]: v[0] for k, v in case["perfvalues"].items()}
        assert perf["images_per_s_per_worker"] > 0 and perf["epoch_time"] > 0
        assert perf["time_to_target"] > 0  # F1 0.01 is reached at the first validation
        assert perf["efficiency"] == 1.0 if ranks == 1 else 0 < perf["efficiency"] <= 2.0
