"""A report over many runs of several systems (the logs benchmarks/report_many.py writes): a summary
line per system and configuration ahead of everything else, a comparison per configuration, a
details line per run; and the benchmark itself runs."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jeoparda.report.report import make_report

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "report_many.py"


def benchmark():
    spec = importlib.util.spec_from_file_location("report_many", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(text, heading):
    """The table rows (header and rule left out) of the section under ``heading``."""
    start = text.index(heading)
    section = text[start:text.find("\n## ", start + 1)]
    return [line for line in section.splitlines() if line.startswith("| ")][1:]


@pytest.mark.filterwarnings("ignore:.*share this system name")  # the logs that name no system
def test_a_report_over_many_runs_of_several_systems(tmp_path):
    benchmark().write_logs(tmp_path / "runs", 90, 3)
    rows, runs = make_report([str(tmp_path / "runs" / "*")], tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    assert len(runs) == 90 and text.index("## Summary") < text.index("## Comparison") < text.index("## Per-run")
    lines = {(r.system_label, r.model, r.task, r.dataset, r.mode, r.data_backend) for r in rows}
    summary = table(text, "## Summary")
    assert len(summary) == len(lines) and {line.split(" | ")[0][2:] for line in summary} == {k[0] for k in lines}
    measured = {}
    for r in rows:
        measured.setdefault((r.model, r.mode, r.data_backend), set()).add(r.system_label)
    assert text.count("## Comparison: ") == sum(len(s) > 1 for s in measured.values())
    assert len(table(text, "## Per-run details")) == len(runs)
    doc = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert len(doc["rows"]) == len(rows) and {e["system"] for e in doc["rows"]} >= {"system0", "system1", "system2"}


def test_the_benchmark_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--runs", "30", "--systems", "2", "--json"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (figures["runs"], figures["systems"]) == (30, 2) and figures["rows"] > 0 and figures["report_s"] > 0
