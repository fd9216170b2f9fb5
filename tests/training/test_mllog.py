"""mllog.txt: a real run's file passes the mlperf-logging compliance checker with the shipped
ruleset; a damaged one fails it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from jeoparda.training.mllog import MLLog
from tests.training.test_train import train_cmd

RULES = Path(__file__).resolve().parents[2] / "benchmarks" / "mlperf" / "jeoparda.yaml"


def check(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "hpc",
                           "--ruleset", "3.0.0", "--config", str(RULES), "--log_output", str(tmp_path / "cc.log"),
                           str(path)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def mllog(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mllog") / "run"
    proc = subprocess.run(train_cmd(dataset, out, "train.epochs=2", "train.max_steps=2", "dist.backend=single",
                                    "train.target=0.01", "mlperf.org=JSC", "mlperf.status=onprem"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out / "mllog.txt"


def lines(path: Path) -> list[dict]:
    return [json.loads(x.removeprefix(":::MLLOG ")) for x in path.read_text().splitlines()]


def test_the_run_log_has_the_hpc_keys(mllog):
    got = lines(mllog)
    keys = [x["key"] for x in got]
    for key in ("submission_org", "submission_platform", "cache_clear", "init_start", "init_stop", "staging_start",
                "staging_stop", "run_start", "run_stop", "epoch_start", "epoch_stop", "eval_start", "eval_stop",
                "eval_accuracy", "train_samples", "eval_samples", "number_of_nodes", "accelerators_per_node", "seed",
                "global_batch_size", "opt_name", "opt_base_learning_rate"):
        assert key in keys, key
    assert all(set(x) == {"namespace", "time_ms", "event_type", "key", "value", "metadata"} for x in got)
    by_key = {x["key"]: x for x in got}
    assert by_key["submission_org"]["value"] == "JSC" and by_key["run_stop"]["metadata"]["status"] == "success"
    assert [x["metadata"]["epoch_num"] for x in got if x["key"] == "epoch_start"] == [1, 2]
    assert by_key["train_samples"]["value"] == 34 and by_key["eval_samples"]["value"] == 7


def test_the_compliance_checker_passes_it(mllog, tmp_path):
    pytest.importorskip("mlperf_logging")
    proc = check(mllog, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stderr + proc.stdout


@pytest.mark.parametrize("damage", ["no run_stop", "epoch out of order", "bad status"])
def test_a_damaged_log_fails_it(mllog, tmp_path, damage):
    pytest.importorskip("mlperf_logging")
    raw = mllog.read_text().splitlines()
    if damage == "no run_stop":
        raw = [x for x in raw if '"key": "run_stop"' not in x]
    elif damage == "epoch out of order":
        i = next(k for k, x in enumerate(raw) if '"key": "epoch_stop"' in x)
        raw[i - 1], raw[i] = raw[i], raw[i - 1]
    else:
        raw = [x.replace('"status": "success"', '"status": "maybe"') for x in raw]
    broken = tmp_path / "mllog.txt"
    broken.write_text("\n".join(raw) + "\n")
    proc = check(broken, tmp_path)
    assert proc.returncode != 0 and "FAILED" in proc.stderr + proc.stdout


def test_run_logs_refuse_a_planted_link_and_leave_its_target(tmp_path):
    """mllog.txt and results.jsonl are appended to without following a link (docs/reliability.md)."""
    from jeoparda.safe_files import UnsafePathError
    from jeoparda.training.records import RunEnd
    from jeoparda.training.results import ResultsLog

    target = tmp_path / "victim.txt"
    target.write_text("keep\n")
    for name, make in (("mllog.txt", MLLog), ("results.jsonl", ResultsLog)):
        run = tmp_path / name.split(".")[0]
        run.mkdir()
        (run / name).symlink_to(target)
        with pytest.raises(UnsafePathError, match="is a symbolic link"):
            make(run, True)
        log = make(run, False)  # a rank other than 0 never looks
        log.enabled = True  # a link planted after the check is still not followed
        with pytest.raises(UnsafePathError):
            log.event("x") if name == "mllog.txt" else log.write(RunEnd(total_time_s=1.0, epochs=1, status="completed"))
    assert target.read_text() == "keep\n"
