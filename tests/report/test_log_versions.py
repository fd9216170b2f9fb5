"""The report gives the same figures for a log written before the schema version and for the same
run written with it: the quality metric comes from the log (version 1) or the legacy table (0)."""
import csv
import dataclasses
import json

from jeoparda.report.report import make_report
from jeoparda.training.records import RECORDS, SCHEMA_VERSION, RunStart, read_log
from tests.report.test_scaling import write_run


def legacy_runs(root):
    """Unversioned logs of three tasks, two world sizes each, one with a target."""
    for world in (1, 2):
        write_run(root / f"ml{world}", world, rates=[1, 100 * world * 0.9 if world > 1 else 100], f1=0.7 + world / 100)
        for name, task, key, value in (("sl", "singlelabel", "accuracy", 0.8), ("sg", "segmentation", "miou", 0.6)):
            run = write_run(root / f"{name}{world}", world, rates=[1, 50 * world], model="fcn_maggiori")
            log = run / "results.jsonl"
            events = [json.loads(line) for line in log.read_text().splitlines()]
            events[0].update(task=task, dataset="bigearthnet-v2")
            events[-1].update({key: value + world / 100, "target": {"metric": key, "value": 0.5},
                               "time_to_target_s": 10.0 * world, "target_epoch": 2})
            log.write_text("".join(json.dumps(e) + "\n" for e in events))


def versioned_copy(old, new):
    """The same runs as version-1 logs: run_start names its schema, job and quality as writers now do."""
    for folder in sorted(p for p in old.iterdir() if p.is_dir()):
        log = read_log(folder)
        start = dataclasses.replace(log.start, schema=SCHEMA_VERSION)
        lines = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
        records = [start if line["event"] == RunStart.EVENT else RECORDS[line["event"]].from_json(line)
                   for line in lines]
        (new / folder.name).mkdir(parents=True)
        (new / folder.name / "results.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))


def table(out):
    with open(out / "scaling.csv") as fh:
        return [{k: v for k, v in row.items() if k != "runs"} for row in csv.DictReader(fh)]


def test_old_and_new_logs_of_the_same_runs_report_the_same(tmp_path):
    legacy_runs(tmp_path / "old")
    versioned_copy(tmp_path / "old", tmp_path / "new")
    new_start = json.loads((tmp_path / "new" / "sg1" / "results.jsonl").read_text().splitlines()[0])
    assert new_start["schema"] == SCHEMA_VERSION and new_start["quality_key"] == "miou"
    assert "schema" not in (tmp_path / "old" / "sg1" / "results.jsonl").read_text()
    make_report([str(tmp_path / "old" / "*")], tmp_path / "rep-old")
    make_report([str(tmp_path / "new" / "*")], tmp_path / "rep-new")
    old, new = table(tmp_path / "rep-old"), table(tmp_path / "rep-new")
    assert len(old) == 6 and old == new
    assert {(r["task"], r["quality_key"]) for r in old} == {("multilabel", "f1_samples"), ("singlelabel", "accuracy"),
                                                            ("segmentation", "miou")}
    text = (tmp_path / "rep-old" / "report.md").read_text()
    assert text == (tmp_path / "rep-new" / "report.md").read_text()
    assert "| time to mIoU 0.50 (s) |" in text and "| efficiency | F1 (samples) |" in text


def test_the_label_comes_from_the_log_where_it_names_one(tmp_path):
    """A version-1 log's own words win: no table re-spells them."""
    run = write_run(tmp_path / "r1", 1, rates=[1, 100])
    log = run / "results.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    events[0].update(schema=SCHEMA_VERSION, task="multilabel", dataset="", quality_key="f1_micro",
                     quality_label="F1 (micro)")
    events[-1].update(f1_micro=0.66)
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    rows, _ = make_report([str(run)], tmp_path / "rep")
    assert (rows[0].quality_key, rows[0].quality_label, rows[0].quality) == ("f1_micro", "F1 (micro)", 0.66)
    assert "| efficiency | F1 (micro) |" in (tmp_path / "rep" / "report.md").read_text()


def test_a_report_over_old_logs_serves_as_its_own_baseline(tmp_path, capsys):
    """Old logs say scaling mode none and global batch 0 (not recorded): their report's summary.json
    is still a baseline, and the same runs pass against it."""
    from jeoparda.cli import main

    legacy_runs(tmp_path / "old")
    for log in (tmp_path / "old").glob("*/results.jsonl"):  # the oldest logs did not say these either
        events = [json.loads(line) for line in log.read_text().splitlines()]
        for key in ("mode", "global_batch_size"):
            events[0].pop(key, None)
        log.write_text("".join(json.dumps(e) + "\n" for e in events))
    make_report([str(tmp_path / "old" / "*")], tmp_path / "base")
    summary = json.loads((tmp_path / "base" / "summary.json").read_text())
    keys = {(r["system"], r["mode"], r["global_batch_size"]) for r in summary["rows"]}
    assert keys == {("unknown system", "none", 0)}
    code = main(["report", str(tmp_path / "old" / "*"), "--out", str(tmp_path / "rep"),
                 "--baseline", str(tmp_path / "base"), "--fail-on-regression"])
    out = capsys.readouterr().out
    assert code == 0 and "figures 0 regressed" in out and "rows without a baseline entry: 0" in out
