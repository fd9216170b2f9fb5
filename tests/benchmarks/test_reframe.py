"""ReFrame itself runs the checks with the local scheduler on this machine (tiny synthetic data,
ResNet18, 1 and 2 processes via mpirun), reports the performance values and judges them against the
references file `jeoparda report --baseline` reads; the file's entries become ReFrame references."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jeoparda.errors import JeopardaError
from jeoparda.report.baseline_file import reframe_reference
from tests.convert.test_run_mpi import mpi_env

REPO = Path(__file__).resolve().parents[2]

#: ReFrame's system in config_local.py is "local": rank 1 is held to a per-worker throughput it
#: easily beats, rank 2 to one no machine reaches.
REFERENCES = """\
format: jeoparda-references
version: 1
references:
  - {system: local, model: resnet18, workers: 1, figures: {images_per_s_per_worker: {value: 0.001, lower: -0.5}}}
  - {system: "*", model: resnet18, workers: 2, figures: {images_per_s_per_worker: {value: 1.0e9, lower: -0.1}}}
"""


@pytest.mark.mpi
def test_reframe_runs_the_checks_and_judges_them_by_the_references_file(dataset, tmp_path):
    reframe = shutil.which("reframe", path=os.path.dirname(sys.executable))
    if reframe is None:
        pytest.skip("reframe-hpc not installed (pip install 'jeoparda[test]')")
    (tmp_path / "refs.yaml").write_text(REFERENCES)
    env = {**mpi_env(), "JEOPARDA_RFM_MODELS": "resnet18", "JEOPARDA_RFM_RANKS": "1 2", "HOME": str(tmp_path),
           "JEOPARDA_RFM_REFERENCES": str(tmp_path / "refs.yaml")}
    proc = subprocess.run(
        [reframe, "-C", str(REPO / "benchmarks/reframe/config_local.py"), "-c",
         str(REPO / "benchmarks/reframe/jeoparda_checks.py"), "-r", "-S", f"data_path={dataset}", "-S", "epochs=2",
         "-S", "extra=train.batch_size=4 train.max_steps=2 data.workers=0 train.threads=1 train.target=0.01",
         "--report-file", str(tmp_path / "report.json")],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode != 0, proc.stdout[-4000:] + proc.stderr[-2000:]  # rank 2 missed its reference
    cases = {c["ranks"]: c for c in json.loads((tmp_path / "report.json").read_text())["runs"][0]["testcases"]}
    assert sorted(cases) == [1, 2] and cases[1]["result"] == "pass", proc.stdout[-4000:]
    assert (cases[2]["result"], cases[2]["fail_phase"]) == ("fail", "performance")
    for ranks, case in cases.items():
        perf = {k.split(":")[-1]: v for k, v in case["perfvalues"].items()}
        assert perf["images_per_s_per_worker"][0] > 0 and perf["epoch_time"][0] > 0
        assert perf["time_to_target"][0] > 0  # F1 0.01 is reached at the first validation
        assert perf["efficiency"][0] == 1.0 if ranks == 1 else 0 < perf["efficiency"][0] <= 2.0
        assert perf["images_per_s_per_worker"][1:4] == ([0.001, -0.5, None] if ranks == 1 else [1e9, -0.1, None])


def test_reframe_reference_takes_the_entry_a_report_row_would(tmp_path):
    refs = tmp_path / "refs.yaml"
    refs.write_text(REFERENCES + """\
  - system: local
    model: resnet18
    workers: 2
    data_backend: dali
    figures:
      efficiency: {value: 0.9, lower: -0.05, upper: 0.05}
      epoch_time_s: {value: 30, tolerance: 0.1}
      time_to_target_s: 60
      mfu: 0.3
""")
    assert reframe_reference(refs, "local", "resnet18", 1) == {
        "*": {"images_per_s_per_worker": (0.001, -0.5, None, "images/s")}}
    # a named system with a matching data backend before "*"; only the worse side is bounded;
    # mfu has no performance variable in the check
    assert reframe_reference(refs, "local", "resnet18", 2, "dali") == {"*": {
        "efficiency": (0.9, -0.05, None, ""), "epoch_time": (30.0, None, 0.1, "s"),
        "time_to_target": (60.0, -1.0, 0.05, "s")}}
    assert reframe_reference(refs, "local", "resnet18", 2, "torch") == {
        "*": {"images_per_s_per_worker": (1e9, -0.1, None, "images/s")}}
    assert reframe_reference(refs, "other", "resnet18", 1) == {}
    assert reframe_reference(refs, "local", "resnet50", 1) == {}
    refs.write_text(REFERENCES.replace("value: 0.001", "value: fast"))
    with pytest.raises(JeopardaError, match=r"references\[0\]\.figures\.images_per_s_per_worker\.value: 'fast'"):
        reframe_reference(refs, "local", "resnet18", 1)
