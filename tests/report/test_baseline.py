"""jeoparda report --baseline: figures against an earlier report or a references file, regressions
named on one line each, --fail-on-regression's exit status, and one line for every bad file."""
import json
import subprocess
from pathlib import Path

import pytest

from jeoparda.cli import main
from jeoparda.report.baseline import compare, regression_lines, verdict
from jeoparda.report.baseline_file import (
    DEFAULT_TOLERANCE,
    EXIT_REGRESSED,
    FIGURES,
    LIMIT_BYTES,
    Bound,
    best_entry,
    load_baseline,
)
from jeoparda.report.report import make_report
from jeoparda.report.summary import summary_doc
from jeoparda.training.records import Epoch, RunEnd, RunStart
from tests.training.test_train import train_cmd

FLOPS = 3e9  # train FLOP per image
PEAK = 1e12  # FLOP/s per worker


def write_run(folder, system="alpha", world=2, rate=200.0, epoch_time=10.0, model="resnet18", flops=True,
              dataset="eurosat"):
    """A completed run of ``system``: a slow first epoch, then steady ``rate`` images/s."""
    start = RunStart(model=model, task="multilabel", dataset=dataset, data_backend="torch", world_size=world,
                     nodes=1, global_batch_size=32 * world, mode="weak", system=system, device="cuda",
                     device_name="NVIDIA A100-SXM4-40GB", system_info={"cpu_model": "EPYC 7742"},
                     train_flops_per_image=FLOPS if flops else None, peak_flops_per_worker=PEAK if flops else None)
    epochs = [Epoch(epoch=i + 1, epoch_time_s=epoch_time, images_per_s=r) for i, r in enumerate([rate / 10, rate])]
    end = RunEnd(status="completed", bottleneck="compute", metrics={"f1_samples": 0.7})
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in (start, *epochs, end)))
    return folder


def summary_of(runs, out):
    """OUT/summary.json of a report over ``runs``, as that report wrote it (what it leaves behind)."""
    rows, _ = make_report([str(r) for r in runs], out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(summary_doc(rows)))
    return summary


def report(tmp_path, capsys, *args):
    code = main(["report", str(tmp_path / "now"), "--out", str(tmp_path / "rep"), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_half_the_baselines_throughput_fails_naming_the_figure(tmp_path, capsys):
    base = summary_of([write_run(tmp_path / "then")], tmp_path / "base")
    write_run(tmp_path / "now", rate=100.0)
    code, out, _ = report(tmp_path, capsys, "--baseline", str(tmp_path / "base"), "--fail-on-regression")
    assert code == EXIT_REGRESSED == 3
    row = base["rows"][0]
    source = tmp_path / "base" / "summary.json"
    expected = row["images_per_s_per_worker"] / 2
    assert (f"regressed: alpha resnet18 2 workers images_per_s_per_worker {expected} < "
            f"{row['images_per_s_per_worker']} - 5 % (baseline {source})") in out.splitlines()
    regressed = {line.split()[5] for line in out.splitlines() if line.startswith("regressed: ")}
    assert regressed == {"images_per_s", "images_per_s_per_worker", "tflops_per_worker", "mfu"}
    assert "figures 4 regressed" in out and (tmp_path / "rep" / "baseline.md").exists()
    page = (tmp_path / "rep" / "report.md").read_text()  # the verdicts follow the summary in the report
    assert page.index("## Summary") < page.index("## Baseline") < page.index("| regressed |")
    assert "<td>regressed</td>" in (tmp_path / "rep" / "report.html").read_text()
    # without --fail-on-regression the same finding is reported, not a failure
    assert report(tmp_path, capsys, "--baseline", str(tmp_path / "base"))[0] == 0


def test_the_baselines_own_runs_pass(tmp_path, capsys):
    write_run(tmp_path / "now")
    base = summary_of([tmp_path / "now"], tmp_path / "base")
    code, out, err = report(tmp_path, capsys, "--baseline", str(tmp_path / "base" / "summary.json"),
                            "--fail-on-regression")
    assert (code, err) == (0, "") and "regressed:" not in out
    compared = [f for f in FIGURES if base["rows"][0][f] is not None]
    assert f"figures 0 regressed, 0 improved, {len(compared)} ok, 0 missing; rows without a baseline entry: 0" in out
    table = (tmp_path / "rep" / "baseline.md").read_text()
    assert table.count("| ok |") == len(compared) and "| regressed |" not in table


def test_the_tolerance_flag_widens_the_band(tmp_path, capsys):
    summary_of([write_run(tmp_path / "then")], tmp_path / "base")
    write_run(tmp_path / "now", rate=100.0)
    code, out, _ = report(tmp_path, capsys, "--baseline", str(tmp_path / "base"), "--tolerance", "0.6",
                          "--fail-on-regression")
    assert code == 0 and "figures 0 regressed" in out
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "now"), "--out", str(tmp_path / "rep"), "--tolerance", "-1"])
    assert info.value.code == 2


REFERENCES = """\
format: jeoparda-references
version: 1
references:
  - system: alpha
    model: resnet18
    workers: 2
    task: multilabel
    figures:
      images_per_s_per_worker: {value: 100, lower: -0.10}
      efficiency: {value: 1.0, tolerance: 0.05}
      epoch_time_s: {value: 20, lower: -0.2, upper: 0.1}
      energy_per_image_j: 0.5
  - system: "*"
    model: resnet18
    workers: 2
    figures:
      images_per_s_per_worker: 1000
  - system: gamma
    model: resnet50
    workers: 8
    figures:
      efficiency: 0.9
"""


def test_references_mark_ok_improved_regressed_missing_and_no_baseline(tmp_path):
    (tmp_path / "refs.yaml").write_text(REFERENCES)
    write_run(tmp_path / "now" / "a", rate=180.0)            # 90 per worker: 10 % below 100, on the bound
    write_run(tmp_path / "now" / "b", system="beta", dataset="bigearthnet")  # only "*": 100 < 1000 - 5 %
    write_run(tmp_path / "now" / "c", system="delta", world=4, model="resnet50")  # no entry at all
    rows, runs = make_report([str(tmp_path / "now" / "*")], tmp_path / "rep")
    checks = compare(summary_doc(rows), load_baseline(tmp_path / "refs.yaml"))
    got = {(c.label, c.figure): c.verdict for c in checks}
    assert got == {
        ("alpha resnet18 2 workers", "images_per_s_per_worker"): "ok",
        ("alpha resnet18 2 workers", "efficiency"): "ok",
        ("alpha resnet18 2 workers", "epoch_time_s"): "improved",    # 10 s < 20 s - 20 %
        ("alpha resnet18 2 workers", "energy_per_image_j"): "missing",  # not measured
        ("beta resnet18 2 workers", "images_per_s_per_worker"): "regressed",
        ("delta resnet50 4 workers", None): "no baseline",
        ("gamma resnet50 8 workers", "efficiency"): "missing",     # an entry no row matched
    }
    assert regression_lines(checks, "refs.yaml") == [
        "regressed: beta resnet18 2 workers images_per_s_per_worker 100.0 < 1000.0 - 5 % (baseline refs.yaml)"]


@pytest.mark.parametrize("figure,current,expected", [
    ("images_per_s", 90.0, "ok"), ("images_per_s", 89.99, "regressed"), ("images_per_s", 110.0, "ok"),
    ("images_per_s", 110.01, "improved"), ("epoch_time_s", 110.0, "ok"), ("epoch_time_s", 110.01, "regressed"),
    ("epoch_time_s", 89.99, "improved"), ("epoch_time_s", None, "missing")])
def test_tolerance_edges_and_directions(figure, current, expected):
    assert verdict(figure, Bound(100.0, -0.1, 0.1), current) == expected


def test_an_unbounded_side_never_judges():
    assert verdict("images_per_s", Bound(100.0, None, 0.1), 1.0) == "ok"
    assert verdict("images_per_s", Bound(100.0, -0.1, None), 1e9) == "ok"


def test_a_named_system_then_more_filters_win_whatever_the_order(tmp_path):
    (tmp_path / "refs.yaml").write_text(HEAD + "".join(
        f"  - {{system: {system}, model: resnet18, workers: 2{extra}, figures: {{efficiency: 0.9}}}}\n"
        for system, extra in (("'*'", ", data_backend: dali"), ("alpha", ""), ("alpha", ", data_backend: dali"))))
    entries = load_baseline(tmp_path / "refs.yaml").entries

    def chosen(system, backend):
        entry = best_entry(entries, {"system": system, "model": "resnet18", "workers": 2, "data_backend": backend})
        return entry and entry.where

    assert chosen("alpha", "dali") == "references[2]" and chosen("alpha", "torch") == "references[1]"
    assert chosen("beta", "dali") == "references[0]" and chosen("beta", "torch") is None


def test_rows_sharing_system_model_and_workers_are_told_apart(tmp_path):
    write_run(tmp_path / "now" / "a")
    other = write_run(tmp_path / "now" / "b")
    log = other / "results.jsonl"
    log.write_text(log.read_text().replace('"data_backend": "torch"', '"data_backend": "dali"'))
    rows, runs = make_report([str(tmp_path / "now" / "*")], tmp_path / "rep")
    (tmp_path / "refs.yaml").write_text(REFERENCES.replace("task: multilabel", "data_backend: dali"))
    checks = compare(summary_doc(rows), load_baseline(tmp_path / "refs.yaml"))
    dali = [c for c in checks if c.label == "alpha resnet18 2 workers (data_backend=dali)"]
    torch = [c for c in checks if c.label == "alpha resnet18 2 workers (data_backend=torch)"]
    assert {c.where for c in dali} == {"references[0]"} and {c.where for c in torch} == {"references[1]"}


def test_the_summary_a_baseline_is_judged_on_carries_the_rows_and_the_runs_figures(tmp_path):
    write_run(tmp_path / "now" / "a", rate=200.0)
    write_run(tmp_path / "now" / "b", system=None, world=1, rate=120.0, flops=False)
    rows, runs = make_report([str(tmp_path / "now" / "*")], tmp_path / "rep")
    summary = summary_doc(rows)
    assert summary["format"] == "jeoparda-report-summary" and len(summary["rows"]) == len(rows)
    for row, out in zip(rows, summary["rows"]):
        assert out["images_per_s"] == row.images_per_s and out["efficiency"] == row.efficiency
        assert out["images_per_s_per_worker"] == row.images_per_s / row.world_size
    by_workers = {r["workers"]: r for r in summary["rows"]}
    alpha = by_workers[2]
    assert (alpha["system"], alpha["hardware"], alpha["bottleneck"]) == ("alpha", "NVIDIA A100-SXM4-40GB", "compute")
    assert alpha["tflops_per_worker"] == pytest.approx(FLOPS * 200.0 / 2 / 1e12)
    assert alpha["mfu"] == pytest.approx(alpha["tflops_per_worker"] * 1e12 / PEAK)
    assert by_workers[1]["system"] == "unknown system" and by_workers[1]["mfu"] is None
    assert set(load_baseline(_dump(tmp_path / "s.json", summary)).entries[0].figures) <= set(FIGURES)


def _dump(path, doc):
    path.write_text(json.dumps(doc))
    return path


def summary_text(**fields):
    row = {"system": "alpha", "model": "resnet18", "workers": 2, **fields}
    return json.dumps({"format": "jeoparda-report-summary", "version": 1, "rows": [row]})


ENTRY = "  - {system: alpha, model: resnet18, workers: 2, figures: {efficiency: 0.9}}\n"
HEAD = "format: jeoparda-references\nversion: 1\nreferences:\n"


@pytest.mark.parametrize("name,text,problem", [
    ("r.yaml", "references: [1, 2\n", "not YAML or JSON (line 2"),
    ("r.json", "{nope", "not JSON (line 1"),
    ("r.yaml", "format: other\nversion: 1\n", "neither a report summary"),
    ("r.yaml", "format: jeoparda-references\nversion: 2\nreferences: []\n", "version 2 of jeoparda-references"),
    ("r.yaml", HEAD + ENTRY + "owner: me\n", "top level: unknown field 'owner'"),
    ("r.yaml", HEAD + ENTRY.replace("system", "sytem"), "references[0]: unknown field 'sytem'"),
    ("r.yaml", HEAD + ENTRY.replace("efficiency", "speed"), "references[0].figures: unknown figure 'speed'"),
    ("r.yaml", HEAD + ENTRY.replace("0.9", "fast"), "references[0].figures.efficiency: 'fast' is not a number"),
    ("r.yaml", HEAD + ENTRY.replace("0.9", "{value: 0.9, tolerance: -0.05}"),
     "references[0].figures.efficiency.tolerance: -0.05 is negative"),
    ("r.yaml", HEAD + ENTRY.replace("0.9", "{value: 0.9, lower: 0.1}"), "references[0].figures.efficiency.lower"),
    ("r.yaml", HEAD + ENTRY.replace("0.9", "{value: 0.9, upper: -0.1}"), "efficiency.upper: -0.1 is negative"),
    ("r.yaml", HEAD + ENTRY.replace("0.9", "{value: 0.9, tolerance: 0.1, lower: -0.1}"), "not both"),
    ("r.yaml", HEAD + ENTRY.replace("0.9", "{tolerance: 0.1}"), "efficiency: missing 'value'"),
    ("r.yaml", HEAD + ENTRY.replace("workers: 2, ", ""), "references[0]: missing 'workers'"),
    ("r.yaml", HEAD + ENTRY.replace("workers: 2", "workers: two"), "references[0].workers: 'two' is not a whole"),
    ("r.yaml", HEAD + ENTRY.replace("figures: {efficiency: 0.9}", "mode: weekly, figures: {efficiency: 0.9}"),
     "references[0].mode: 'weekly'"),
    ("r.yaml", HEAD + ENTRY + ENTRY, "references[1]: applies to the same rows as references[0]"),
    ("r.yaml", HEAD + "  - 3\n", "references[0]: not a mapping"),
    ("r.yaml", HEAD + "  - {system: alpha, model: resnet18, workers: 2}\n", "references[0].figures: missing"),
    ("r.yaml", "format: jeoparda-references\nversion: 1\nreferences: {}\n", "'references' must be a list"),
    ("s.json", summary_text(colour="red"), "rows[0]: unknown field 'colour'"),
    ("s.json", summary_text(mfu="high"), "rows[0].mfu: 'high' is not a number"),
    ("s.json", summary_text(system="*"), "rows[0].system: '*' is for references files"),
])
def test_a_bad_baseline_is_one_line_and_nothing_is_written(name, text, problem, tmp_path, capsys):
    write_run(tmp_path / "now")
    (tmp_path / name).write_text(text)
    code, out, err = report(tmp_path, capsys, "--baseline", str(tmp_path / name))
    assert code == 1 and out == "" and not (tmp_path / "rep").exists()
    assert err.count("\n") == 1 and err.startswith(f"jeoparda: error: {tmp_path / name}: ") and problem in err


def test_unreadable_baselines_are_one_line(tmp_path, capsys):
    write_run(tmp_path / "now")
    (tmp_path / "empty").mkdir()
    with open(tmp_path / "huge.yaml", "wb") as fh:
        fh.truncate(LIMIT_BYTES + 1)  # sparse: costs no disk
    (tmp_path / "latin.yaml").write_bytes("system: café".encode("latin-1"))
    for path, problem in ((tmp_path / "absent.yaml", "cannot open"), (tmp_path / "empty", "without summary.json"),
                          (tmp_path / "huge.yaml", "refused"), (tmp_path / "latin.yaml", "not UTF-8")):
        code, out, err = report(tmp_path, capsys, "--baseline", str(path))
        assert code == 1 and err.count("\n") == 1 and str(path) in err and problem in err, err
    code, _, err = report(tmp_path, capsys, "--fail-on-regression")
    assert code == 1 and "--fail-on-regression needs --baseline" in err


def test_default_tolerance_is_what_the_help_says(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert f"default {DEFAULT_TOLERANCE}" in capsys.readouterr().out


def test_a_real_run_against_itself_and_against_twice_its_throughput(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.run(train_cmd(dataset, run, "train.epochs=2", "train.max_steps=2", "dist.backend=single"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    base = summary_of([run], tmp_path / "base")
    capsys.readouterr()
    args = ["report", str(run), "--out", str(tmp_path / "rep"), "--fail-on-regression", "--baseline"]
    assert main(args + [str(tmp_path / "base")]) == 0
    assert "figures 0 regressed" in capsys.readouterr().out
    row = base["rows"][0]
    doubled = 2 * row["images_per_s_per_worker"]
    refs = tmp_path / "refs.yaml"
    refs.write_text(f"format: jeoparda-references\nversion: 1\nreferences:\n  - system: '{row['system']}'\n"
                    f"    model: resnet18\n    workers: 1\n    figures:\n"
                    f"      images_per_s_per_worker: {{value: {doubled}, lower: -0.10}}\n")
    assert main(args + [str(refs)]) == 3
    assert (f"regressed: {row['system']} resnet18 1 worker images_per_s_per_worker "
            f"{round(row['images_per_s_per_worker'], 4)} < {round(doubled, 4)} - 10 % (baseline {refs})"
            in capsys.readouterr().out.splitlines())


def test_the_shipped_example_reads_and_covers_every_kind_of_bound():
    example = Path(__file__).resolve().parents[2] / "benchmarks" / "references.example.yaml"
    entries = load_baseline(example).entries
    bounds = [b for e in entries for b in e.figures.values()]
    assert len(entries) == 3 and any(e.key["system"] == "*" for e in entries)
    assert any(b.upper is None for b in bounds) and any(b.lower == -b.upper for b in bounds if b.upper)


def test_fail_on_missing_catches_a_night_whose_run_failed(tmp_path, capsys):
    summary_of([write_run(tmp_path / "then" / "a"), write_run(tmp_path / "then" / "b", system="beta")],
               tmp_path / "base")
    write_run(tmp_path / "now" / "a")  # beta's run failed tonight: nothing of it reached the logs
    args = ["report", str(tmp_path / "now" / "*"), "--out", str(tmp_path / "rep"), "--baseline", str(tmp_path / "base")]
    assert main([*args, "--fail-on-regression"]) == 0  # nothing regressed: a missing row is no regression
    capsys.readouterr()
    assert main([*args, "--fail-on-regression", "--fail-on-missing"]) == EXIT_REGRESSED
    missing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("missing: ")]
    assert missing and all(line.startswith("missing: beta resnet18 2 workers ") for line in missing)
    assert any(") images_per_s_per_worker (baseline " in line for line in missing)  # each figure named


def test_fail_on_missing_needs_a_baseline(tmp_path, capsys):
    write_run(tmp_path / "now")
    assert main(["report", str(tmp_path / "now"), "--out", str(tmp_path / "rep"), "--fail-on-missing"]) == 1
    assert "--fail-on-missing needs --baseline" in capsys.readouterr().err
