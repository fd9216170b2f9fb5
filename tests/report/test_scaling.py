"""jeoparda report on hand-made results logs with known throughputs: the figures are exact."""
import csv
import json
import re

import pytest

from jeoparda.cli import main
from jeoparda.report.report import make_report


def write_run(folder, world, rates=None, times=None, mode="weak", status="completed", model="resnet50",
              backend="synthetic", f1=0.8):
    folder.mkdir(parents=True)
    rates = rates or [1.0] * len(times)
    times = times or [1.0] * len(rates)
    lines = [{"event": "run_start", "time": 0, "run_id": folder.name, "model": model, "backend": "ddp",
              "data_backend": backend, "world_size": world, "nodes": max(1, world // 4), "mode": mode,
              "global_batch_size": 64 * world if mode == "weak" else 512, "hosts": ["n1"],
              "versions": {"torch": "2.13"}}]
    lines += [{"event": "epoch", "time": i, "epoch": i + 1, "images_per_s": r, "epoch_time_s": t}
              for i, (r, t) in enumerate(zip(rates, times))]
    if status:
        lines.append({"event": "run_end", "time": 99, "status": status, "f1_samples": f1, "accuracy": f1 - 0.1})
    (folder / "results.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return folder


def rows(out):
    with open(out / "scaling.csv") as fh:
        return list(csv.DictReader(fh))


def test_weak_scaling_exact(tmp_path):
    # first epoch (warm-up) is slow and must not count; steady throughput 100, 190, 360
    write_run(tmp_path / "r1", 1, rates=[10, 100, 100, 100])
    write_run(tmp_path / "r2", 2, rates=[10, 190, 190])
    write_run(tmp_path / "r4", 4, rates=[10, 350, 360, 370])
    make_report([str(tmp_path / "r*")], tmp_path / "rep")
    got = {int(r["world_size"]): r for r in rows(tmp_path / "rep")}
    assert [float(got[n]["images_per_s"]) for n in (1, 2, 4)] == [100, 190, 360]
    assert float(got[2]["efficiency"]) == pytest.approx(0.95, abs=1e-12)
    assert float(got[4]["efficiency"]) == pytest.approx(0.90, abs=1e-12)
    assert float(got[4]["speedup"]) == pytest.approx(3.6, abs=1e-12)
    assert float(got[1]["f1_samples"]) == 0.8 and got[4]["mode"] == "weak"


def test_strong_scaling_with_n0_above_one(tmp_path):
    write_run(tmp_path / "s2", 2, times=[300, 100, 100], mode="strong")
    write_run(tmp_path / "s4", 4, times=[300, 55], mode="strong")
    write_run(tmp_path / "s8", 8, times=[30], mode="strong")  # a single epoch counts as it is
    make_report([str(tmp_path / "s*")], tmp_path / "rep")
    got = {int(r["world_size"]): r for r in rows(tmp_path / "rep")}
    assert float(got[2]["efficiency"]) == 1.0
    assert float(got[4]["efficiency"]) == pytest.approx(100 * 2 / (55 * 4), abs=1e-12)
    assert float(got[8]["efficiency"]) == pytest.approx(100 * 2 / (30 * 8), abs=1e-12)
    assert float(got[8]["speedup"]) == pytest.approx(100 / 30, abs=1e-12)


def test_repeats_are_combined_and_groups_kept_apart(tmp_path):
    write_run(tmp_path / "a1", 1, rates=[1, 100, 100])
    write_run(tmp_path / "a2", 2, rates=[1, 180, 180])
    write_run(tmp_path / "b2", 2, rates=[1, 200, 200])
    write_run(tmp_path / "c2", 2, rates=[1, 220, 220])
    write_run(tmp_path / "t1", 1, rates=[1, 50, 50], backend="torch")
    make_report([str(tmp_path / "*")], tmp_path / "rep")
    got = {(r["data_backend"], int(r["world_size"])): r for r in rows(tmp_path / "rep")}
    assert float(got[("synthetic", 2)]["images_per_s"]) == 200  # median of 180, 200, 220
    assert float(got[("synthetic", 2)]["efficiency"]) == 1.0
    assert float(got[("torch", 1)]["images_per_s"]) == 50


def test_damaged_failed_and_preempted_runs_are_not_data_points(tmp_path):
    write_run(tmp_path / "ok1", 1, rates=[1, 100])
    write_run(tmp_path / "ok2", 2, rates=[1, 150])
    write_run(tmp_path / "fail", 2, rates=[1, 999], status="failed")
    write_run(tmp_path / "pre", 2, rates=[1, 999], status="preempted")
    write_run(tmp_path / "cut", 2, rates=[1, 999], status=None)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.jsonl").write_text('{"event": "run_start", "time": 0}\n{not json\n')
    with pytest.warns(UserWarning, match=f"{bad / 'results.jsonl'}: skipped"):
        make_report([str(tmp_path / "*")], tmp_path / "rep")
    got = rows(tmp_path / "rep")
    assert [float(r["images_per_s"]) for r in got] == [100, 150]
    report = (tmp_path / "rep" / "report.md").read_text()
    for line in (f"{tmp_path / 'fail' / 'results.jsonl'}: failed", f"{tmp_path / 'pre' / 'results.jsonl'}: preempted",
                 f"{tmp_path / 'cut' / 'results.jsonl'}: incomplete",
                 f"{bad}: unreadable or incomplete log, or not a training run"):
        assert line in report


def test_super_resolution_runs_are_left_out(tmp_path, sr_model):
    import shutil

    write_run(tmp_path / "ok1", 1, rates=[1, 100])
    shutil.copytree(sr_model.parent / "run", tmp_path / "sr")
    with pytest.warns(UserWarning, match="super-resolution run"):
        make_report([str(tmp_path / "*")], tmp_path / "rep")
    assert [float(r["images_per_s"]) for r in rows(tmp_path / "rep")] == [100]


def test_cli(tmp_path, capsys):
    write_run(tmp_path / "r1", 1, rates=[1, 10])
    assert main(["report", str(tmp_path / "r1"), "--out", str(tmp_path / "rep")]) == 0
    assert "1 rows from 1 runs" in capsys.readouterr().out and (tmp_path / "rep" / "report.html").exists()
    assert main(["report", str(tmp_path / "nothing*"), "--out", str(tmp_path / "rep")]) == 1
    assert "nothing*: no such run folder or results log" in capsys.readouterr().err


def test_plots_are_pngs_and_html_is_self_contained(tmp_path):
    import re

    import matplotlib.image

    write_run(tmp_path / "r1", 1, rates=[1, 100])
    write_run(tmp_path / "r2", 2, rates=[1, 190])
    make_report([str(tmp_path / "r*")], tmp_path / "rep")
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert pngs == ["efficiency.png", "epoch_time.png", "quality_vs_batch.png", "throughput.png"]
    for name in pngs:
        data = (tmp_path / "rep" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(tmp_path / "rep" / name).shape
        assert width >= 400 and height >= 300
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<td>95.0 %</td>" in page and "<table>" in page
    assert "![throughput](throughput.png)" in (tmp_path / "rep" / "report.md").read_text()


def test_environment_table_names_devices_hosts_and_versions(tmp_path):
    run = write_run(tmp_path / "g8", 8, rates=[1, 800])
    log = run / "results.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    events[0].update(device="cuda", device_name="NVIDIA H100 80GB HBM3", gpus_per_node=4, hosts=["n1", "n2"],
                     versions={"torch": "2.13", "cuda": "12.6", "mpi": "Open MPI v5.0.8", "dali": "2.4.0",
                               "horovod": None})
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    make_report([str(run)], tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    env = text[text.index("## Environment"):]
    assert ("| g8 | unknown system | NVIDIA H100 80GB HBM3 | 8 | 2 | NVIDIA H100 80GB HBM3 | 4 | n1, n2 | 2.13 | "
            "12.6 | Open MPI v5.0.8 | 2.4.0 | None |") in env
    assert "NVIDIA H100 80GB HBM3" in (tmp_path / "rep" / "report.html").read_text()


def test_single_label_runs_report_accuracy_and_a_confusion_matrix(tmp_path):
    import matplotlib.image

    classes = ["AnnualCrop", "Forest", "SeaLake"]
    cm = [[5, 1, 0], [0, 6, 0], [1, 0, 7]]
    for world, acc in ((1, 0.9), (2, 0.85)):
        run = write_run(tmp_path / f"e{world}", world, rates=[1, 100 * world * 0.9 if world > 1 else 100])
        log = run / "results.jsonl"
        events = [json.loads(line) for line in log.read_text().splitlines()]
        events[0].update(task="singlelabel", dataset="eurosat", classes=classes)
        events[-1].update(accuracy=acc, test={"accuracy": acc, "confusion_matrix": cm})
        del events[-1]["f1_samples"]
        log.write_text("".join(json.dumps(e) + "\n" for e in events))
    write_run(tmp_path / "b1", 1, rates=[1, 100], f1=0.7)  # a multi-label run of the same model stays apart
    make_report([str(tmp_path / "*1"), str(tmp_path / "e2")], tmp_path / "rep")
    got = rows(tmp_path / "rep")
    euro = {int(r["world_size"]): r for r in got if r["task"] == "singlelabel"}
    assert euro[1]["quality_key"] == "accuracy" and float(euro[2]["quality"]) == 0.85
    assert euro[1]["dataset"] == "eurosat" and float(euro[2]["efficiency"]) == pytest.approx(0.9)
    multi = [r for r in got if r["task"] == "multilabel"]
    assert len(multi) == 1 and multi[0]["quality_key"] == "f1_samples" and float(multi[0]["quality"]) == 0.7
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## resnet50 on eurosat (singlelabel), weak scaling, synthetic data" in text
    assert "| efficiency | accuracy |" in text and "| efficiency | F1 (samples) |" in text
    png = tmp_path / "rep" / "confusion_matrix.png"
    assert matplotlib.image.imread(png).shape[1] >= 400
    assert "confusion_matrix" in (tmp_path / "rep" / "report.html").read_text()


def test_time_to_target_column_and_plot(tmp_path):
    import matplotlib.image

    for world, t in ((1, 400.0), (2, 220.0), (4, None)):
        run = write_run(tmp_path / f"t{world}", world, rates=[1, 100 * world], mode="strong")
        log = run / "results.jsonl"
        events = [json.loads(line) for line in log.read_text().splitlines()]
        events[-1].update(target={"metric": "f1_samples", "value": 0.72}, time_to_target_s=t,
                          target_epoch=None if t is None else 3)
        log.write_text("".join(json.dumps(e) + "\n" for e in events))
    make_report([str(tmp_path / "t*")], tmp_path / "rep")
    got = {int(r["world_size"]): r for r in rows(tmp_path / "rep")}
    assert float(got[2]["time_to_target_s"]) == 220.0 and got[4]["time_to_target_s"] == ""
    assert (got[1]["target_reached"], got[4]["target_reached"]) == ("1/1", "0/1")
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| time to F1 (samples) 0.72 (s) |" in text
    assert "| 220.0 (1/1 reached) |" in text and "| not reached (0/1) |" in text
    assert matplotlib.image.imread(tmp_path / "rep" / "time_to_target.png").shape[1] >= 400


def test_energy_per_image_column_where_measured(tmp_path):
    for world, joules in ((1, [0.9, 0.5, 0.7]), (2, [None, None])):
        run = write_run(tmp_path / f"e{world}", world, rates=[1, 100, 100][:len(joules)])
        log = run / "results.jsonl"
        events = [json.loads(line) for line in log.read_text().splitlines()]
        for e, j in zip((e for e in events if e["event"] == "epoch"), joules):
            e["energy_per_image_j"] = j
        log.write_text("".join(json.dumps(e) + "\n" for e in events))
    make_report([str(tmp_path / "e*")], tmp_path / "rep")
    got = {int(r["world_size"]): r for r in rows(tmp_path / "rep")}
    assert float(got[1]["energy_per_image_j"]) == pytest.approx(0.6)  # median of the epochs after the first
    assert got[2]["energy_per_image_j"] == ""
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| energy (J/image) |" in text and "| 0.6000 |" in text and "| – |" in text


def test_segmentation_runs_report_miou(tmp_path):
    for world, miou in ((1, 0.61), (2, 0.58)):
        run = write_run(tmp_path / f"s{world}", world, rates=[1, 50 * world], model="fcn_maggiori")
        log = run / "results.jsonl"
        events = [json.loads(line) for line in log.read_text().splitlines()]
        events[0].update(task="segmentation", dataset="bigearthnet-v2")
        events[-1].update(miou=miou, pixel_accuracy=0.9)
        del events[-1]["f1_samples"], events[-1]["accuracy"]
        log.write_text("".join(json.dumps(e) + "\n" for e in events))
    make_report([str(tmp_path / "s*")], tmp_path / "rep")
    got = {int(r["world_size"]): r for r in rows(tmp_path / "rep")}
    assert got[1]["quality_key"] == "miou" and float(got[2]["quality"]) == 0.58
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "fcn_maggiori on bigearthnet-v2 (segmentation)" in text and "| efficiency | mIoU |" in text


def test_malformed_lines_are_skipped_and_never_make_a_median_nan(tmp_path):
    """A NaN, an infinity, a word where a number belongs, a missing field: the line is passed over
    with a warning naming file and line; scaling.csv and report.md hold no NaN and no traceback."""
    write_run(tmp_path / "a", 1, rates=[1, 100, 100])
    b = write_run(tmp_path / "b", 2, rates=[1, 300, 100], f1=0.6)
    log = b / "results.jsonl"
    lines = log.read_text().splitlines()
    lines.insert(2, '{"event": "epoch", "time": 1, "epoch": 9, "images_per_s": NaN, "epoch_time_s": 1}')
    lines.insert(3, '{"event": "epoch", "time": 1, "epoch": 9, "images_per_s": "fast", "epoch_time_s": 1}')
    lines.insert(4, '{"event": "epoch", "time": 1, "epoch": 9, "images_per_s": Infinity, "epoch_time_s": 1}')
    lines.insert(5, '{"event": "epoch", "time": 1, "epoch": 9, "epoch_time_s": 1}')
    end = json.loads(lines[-1])
    lines[-1] = json.dumps({**end, "f1_samples": float("nan"), "accuracy": "high"})
    log.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as caught:
        make_report([str(tmp_path / "*")], tmp_path / "rep")
    assert {str(w.message) for w in caught} >= {f"{log}:{n}: skipped, epoch field images_per_s is {v}, not a "
                                                "finite number" for n, v in ((3, "nan"), (4, "'fast'"), (5, "inf"))}
    assert f"{log}:6: skipped, epoch lacks images_per_s" in {str(w.message) for w in caught}
    got = rows(tmp_path / "rep")
    assert [float(r["images_per_s"]) for r in got] == [100, 200]
    assert got[1]["f1_samples"] == "" and got[1]["accuracy"] == ""
    for name in ("scaling.csv", "report.md"):
        assert not re.search(r"\b(nan|-?inf)\b", (tmp_path / "rep" / name).read_text().lower())


@pytest.mark.parametrize("edit, why", [
    (lambda events: events[0].update(world_size=0), "world_size 0"),
    (lambda events: events[2].update(images_per_s=0.0), "an epoch with no throughput or no time"),
    (lambda events: events[1].update(epoch_time_s=0.0), "an epoch with no throughput or no time"),
])
def test_a_log_whose_figures_cannot_be_divided_by_is_skipped_with_a_line(tmp_path, edit, why):
    good, bad = write_run(tmp_path / "good", 1, rates=[1, 10]), write_run(tmp_path / "bad", 2, rates=[1, 19])
    log = bad / "results.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    edit(events)
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.warns(UserWarning, match=f"bad/results.jsonl: skipped, {why}"):
        rows, runs = make_report([str(tmp_path / "*")], tmp_path / "rep")
    assert [str(r.path.parent) for r in runs] == [str(good)] and len(rows) == 1
