"""The report over runs of several systems: never mixed, N0 per system, old logs as "unknown system",
colliding names kept apart by hardware, the comparison section and its plots, summary.json, the
order of the report and the per-run bottleneck."""
import csv
import json
import re

import pytest

from jeoparda.report import plots
from jeoparda.report.report import make_report
from jeoparda.report.systems import UNKNOWN_SYSTEM, hardware, system_name
from jeoparda.training.records import Epoch, RunEnd, RunStart
from tests.report.test_scaling import write_run

A100 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"
EPYC = "AMD EPYC 7763 64-Core Processor"


def system_run(folder, world, rate, system=None, device="cuda", device_name=A100, flops=None, peak=None,
               epoch_extra=(), split=None, bottleneck=None, note=None):
    """A version-1 log written with the records: a slow first epoch, then two at ``rate`` images/s."""
    start = RunStart(time=0, run_id=folder.name, system=system, model="resnet18", task="multilabel",
                     quality_key="f1_samples", quality_label="F1 (samples)", dataset="eurosat", data_backend="torch",
                     world_size=world, nodes=1, device=device, device_name=device_name, batch_size_per_worker=32,
                     global_batch_size=32 * world, mode="weak", train_flops_per_image=flops, peak_flops_per_worker=peak)
    epochs = [Epoch(time=i + 1, epoch=i + 1, epoch_time_s=1000 / r, images_per_s=r, **dict(epoch_extra).get(i, {}))
              for i, r in enumerate([rate / 10, rate, rate])]
    end = RunEnd(time=9, status="completed", step_split=split, bottleneck=bottleneck, bottleneck_note=note,
                 metrics={"f1_samples": 0.7})
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in [start, *epochs, end]))
    return folder


def csv_rows(out):
    with open(out / "scaling.csv") as fh:
        return list(csv.DictReader(fh))


def two_systems(root, **beta):
    """alpha: 1 and 2 workers at 100 and 190 images/s; beta: 1 and 2 workers at 300 and 540."""
    system_run(root / "a1", 1, 100.0, system="alpha")
    system_run(root / "a2", 2, 190.0, system="alpha")
    system_run(root / "b1", 1, 300.0, system="beta", device_name=H100, **beta)
    system_run(root / "b2", 2, 540.0, system="beta", device_name=H100, **beta)


@pytest.mark.parametrize("device, name, info, expected", [
    ("cuda", A100, {"gpu_model": H100, "cpu_model": EPYC}, A100),  # the GPU the run used
    ("cuda", None, {"gpu_model": H100, "cpu_model": EPYC}, H100),
    ("cpu", "cpu", {"gpu_model": H100, "cpu_model": EPYC}, EPYC),  # a CPU run on a GPU node: its CPU
    ("cpu", EPYC, None, EPYC),
    (None, None, {"cpu_model": 7}, ""),                            # nothing usable said
])
def test_hardware_is_the_gpu_of_a_gpu_run_else_the_cpu(device, name, info, expected):
    start = RunStart(model="m", task="multilabel", dataset="", data_backend="torch", world_size=1, nodes=1,
                     global_batch_size=1, mode="weak", device=device, device_name=name, system_info=info)
    assert hardware(start) == expected and system_name(start) == UNKNOWN_SYSTEM


def test_runs_of_two_machines_never_share_a_row(tmp_path):
    """The issue's case: 1 rank on one machine, 2 ranks on an A100 machine: two rows of 100 %,
    not one row whose speed-up compares one machine with the other."""
    system_run(tmp_path / "one", 1, 20.0, system="alpha", device="cpu", device_name=EPYC)
    system_run(tmp_path / "two", 2, 1743.2, system="beta", device_name=A100)
    rows, _ = make_report([str(tmp_path / "*")], tmp_path / "rep")
    mixed = 1743.2 / (2 / 1 * 20.0)
    got = csv_rows(tmp_path / "rep")
    assert list(got[0])[:2] == ["system", "hardware"]
    assert {(r["system"], r["hardware"], int(r["world_size"])) for r in got} == {("alpha", EPYC, 1), ("beta", A100, 2)}
    assert [float(r["efficiency"]) for r in got] == [1.0, 1.0] and [float(r["speedup"]) for r in got] == [1.0, 1.0]
    assert all(r.efficiency != pytest.approx(mixed) for r in rows)
    assert f"{100 * mixed:.1f} %" not in (tmp_path / "rep" / "report.md").read_text()


def test_each_system_scales_against_its_own_smallest_worker_count(tmp_path):
    for n, rate in ((1, 100.0), (2, 180.0), (4, 340.0)):
        system_run(tmp_path / f"a{n}", n, rate, system="alpha")
    for n, rate in ((2, 500.0), (4, 900.0)):
        system_run(tmp_path / f"b{n}", n, rate, system="beta", device_name=H100)
    make_report([str(tmp_path / "*")], tmp_path / "rep")
    got = {(r["system"], int(r["world_size"])): r for r in csv_rows(tmp_path / "rep")}
    assert float(got["alpha", 2]["efficiency"]) == pytest.approx(180 / (2 * 100))
    assert float(got["alpha", 4]["efficiency"]) == pytest.approx(340 / (4 * 100))
    assert float(got["beta", 2]["efficiency"]) == 1.0  # beta's N0 is 2, not alpha's 1
    assert float(got["beta", 4]["efficiency"]) == pytest.approx(900 / (4 / 2 * 500))
    assert float(got["beta", 4]["speedup"]) == pytest.approx(900 / 500)
    assert float(got["beta", 4]["images_per_s_per_worker"]) == pytest.approx(900 / 4)
    text = (tmp_path / "rep" / "report.md").read_text()
    assert f"## Scaling on alpha ({A100})" in text and f"## Scaling on beta ({H100})" in text


def test_old_logs_are_read_as_unknown_system(tmp_path):
    write_run(tmp_path / "old1", 1, rates=[1, 100])  # no schema, no system: a log from before both
    write_run(tmp_path / "old2", 2, rates=[1, 150])
    system_run(tmp_path / "new1", 1, 400.0, system="alpha")
    make_report([str(tmp_path / "*")], tmp_path / "rep")
    got = {(r["system"], int(r["world_size"])): r for r in csv_rows(tmp_path / "rep")}
    assert set(got) == {(UNKNOWN_SYSTEM, 1), (UNKNOWN_SYSTEM, 2), ("alpha", 1)}
    assert float(got[UNKNOWN_SYSTEM, 2]["efficiency"]) == pytest.approx(150 / (2 * 100))
    assert got[UNKNOWN_SYSTEM, 1]["hardware"] == "" and got[UNKNOWN_SYSTEM, 1]["bottleneck"] == ""
    text = (tmp_path / "rep" / "report.md").read_text()
    assert f"## Scaling on {UNKNOWN_SYSTEM}\n" in text
    details = text[text.index("## Per-run details"):text.index("## Environment")]
    assert f"| old1 | {UNKNOWN_SYSTEM} | 1 | completed | 100.0 | – | – | – |" in details


def test_one_system_name_of_two_hardware_warns_once_and_keeps_them_apart(tmp_path):
    for name, gpu, rates in (("a", A100, (100.0, 190.0)), ("h", H100, (300.0, 540.0))):
        for n, rate in zip((1, 2), rates):
            system_run(tmp_path / f"{name}{n}", n, rate, system="gpu", device_name=gpu)
    with pytest.warns(UserWarning) as caught:
        rows, _ = make_report([str(tmp_path / "*")], tmp_path / "rep")
    said = [str(w.message) for w in caught if "share this system name" in str(w.message)]
    assert said == [f"gpu: runs of different hardware ({A100}, {H100}) share this system name; kept apart as "
                    f"'gpu [{A100}]' and 'gpu [{H100}]'"]
    got = {(r.system_label, r.world_size): r for r in rows}
    assert got[f"gpu [{A100}]", 2].efficiency == pytest.approx(190 / (2 * 100))
    assert got[f"gpu [{H100}]", 2].efficiency == pytest.approx(540 / (2 * 300))
    assert {(r["system"], r["hardware"]) for r in csv_rows(tmp_path / "rep")} == {("gpu", A100), ("gpu", H100)}


def _plot_lines(monkeypatch):
    """What each saved plot drew: its file name and the labels of its lines (legend entries)."""
    drawn = {}
    save = plots._save

    def spy(fig, ax, path, ticks):
        drawn[path.name] = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
        save(fig, ax, path, ticks)

    monkeypatch.setattr(plots, "_save", spy)
    return drawn


def test_a_comparison_only_where_a_configuration_ran_on_several_systems(tmp_path, monkeypatch):
    drawn = _plot_lines(monkeypatch)
    system_run(tmp_path / "one" / "a1", 1, 100.0, system="alpha")
    system_run(tmp_path / "one" / "a2", 2, 190.0, system="alpha")
    make_report([str(tmp_path / "one" / "*")], tmp_path / "rep1")
    assert "## Comparison" not in (tmp_path / "rep1" / "report.md").read_text()
    assert not list((tmp_path / "rep1").glob("compare-*"))

    two_systems(tmp_path / "two")
    rows, _ = make_report([str(tmp_path / "two" / "*")], tmp_path / "rep2")
    text = (tmp_path / "rep2" / "report.md").read_text()
    section = text[text.index("## Comparison: resnet18 on eurosat (multilabel), weak scaling, torch data"):]
    section = section[:section.index("\n## ")]
    for r in rows:
        assert (f"| {r.system} | {r.hardware} | {r.world_size} | {r.images_per_s / r.world_size:.1f} | "
                f"{100 * r.efficiency:.1f} % | {r.epoch_time_s:.2f} | – | – | n/a | n/a |") in section
    pngs = sorted(p.name for p in (tmp_path / "rep2").glob("compare-*.png"))
    assert len(pngs) == 2 and all(f"]({name})" in section for name in pngs)
    assert [drawn[name] for name in pngs] == [["alpha", "beta"], ["alpha", "beta"]]  # one line per system
    for name in pngs:
        assert (tmp_path / "rep2" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_json_holds_every_row(tmp_path):
    split = {"step_s": 0.1, "data_wait_s": 0.05, "compute_s": 0.04, "communication_s": 0.01}
    two_systems(tmp_path, flops=2e9, peak=1e14, split=split, bottleneck="data", note="more loader workers")
    rows, _ = make_report([str(tmp_path / "*")], tmp_path / "rep")
    doc = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert (doc["format"], doc["version"]) == ("jeoparda-report-summary", 1) and len(doc["rows"]) == len(rows) == 4
    for entry, r in zip(doc["rows"], rows):
        assert list(entry) == ["system", "hardware", "model", "task", "dataset", "mode", "data_backend", "workers",
                               "nodes", "global_batch_size", "runs", "images_per_s", "images_per_s_per_worker",
                               "efficiency", "epoch_time_s", "time_to_target_s", "energy_per_image_j",
                               "tflops_per_worker", "mfu", "quality_key", "quality", "bottleneck"]
        assert (entry["system"], entry["hardware"], entry["workers"], entry["runs"]) == (
            r.system, r.hardware, r.world_size, len(r.runs))
        assert entry["images_per_s_per_worker"] == pytest.approx(entry["images_per_s"] / entry["workers"])
        assert (entry["efficiency"], entry["quality"], entry["time_to_target_s"]) == (r.efficiency, 0.7, None)
        if entry["system"] == "alpha":  # no FLOP count, no peak, no verdict in its logs
            assert (entry["tflops_per_worker"], entry["mfu"], entry["bottleneck"]) == (None, None, None)
        else:
            assert entry["tflops_per_worker"] == pytest.approx(2e9 * entry["images_per_s"] / entry["workers"] / 1e12)
            assert entry["mfu"] == pytest.approx(entry["tflops_per_worker"] * 1e12 / 1e14)
            assert entry["bottleneck"] == "data"


def test_flops_the_epochs_logged_win_and_mfu_needs_a_peak(tmp_path):
    logged = {i: {"tflops_per_worker": t, "mfu": m} for i, (t, m) in enumerate(((9.0, 0.9), (5.0, 0.5), (7.0, 0.7)))}
    system_run(tmp_path / "a1", 1, 100.0, system="alpha", flops=1e12, peak=1e15, epoch_extra=logged)
    system_run(tmp_path / "b1", 1, 100.0, system="beta", flops=1e12)  # a CPU-like run: no known peak
    rows, _ = make_report([str(tmp_path / "*")], tmp_path / "rep")
    got = {r.system: r for r in rows}
    assert (got["alpha"].tflops_per_worker, got["alpha"].mfu) == (6.0, 0.6)  # medians after the first epoch
    assert got["beta"].tflops_per_worker == pytest.approx(1e12 * 100 / 1 / 1e12) and got["beta"].mfu is None
    assert {r["system"]: r["mfu"] for r in csv_rows(tmp_path / "rep")} == {"alpha": "0.6", "beta": ""}
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| beta | NVIDIA A100-SXM4-40GB | 1 | 100.0 | 100.0 % | 10.00 | – | – | 100 | n/a |" in text


def test_each_run_shows_its_step_split_and_verdict_and_a_row_the_most_common(tmp_path):
    split = {"step_s": 0.1, "data_wait_s": 0.05, "compute_s": 0.04, "communication_s": 0.01}
    unsplit = {"step_s": 0.2, "data_wait_s": 0.05, "compute_s": None, "communication_s": None}
    system_run(tmp_path / "r1", 2, 100.0, system="alpha", split=split, bottleneck="data", note="add loader workers.")
    system_run(tmp_path / "r2", 2, 100.0, system="alpha", split=split, bottleneck="data", note="add loader workers.")
    system_run(tmp_path / "r3", 2, 100.0, system="alpha", split=unsplit, bottleneck="unsplit", note="use bench.")
    rows, _ = make_report([str(tmp_path / "*")], tmp_path / "rep")
    assert [r.bottleneck for r in rows] == ["data"]
    text = (tmp_path / "rep" / "report.md").read_text()
    assert ("| r1 | alpha | 2 | completed | 100.0 | step 0.1000 s, data 0.0500, compute 0.0400, communication "
            "0.0100 | data | add loader workers. |") in text
    assert ("| r3 | alpha | 2 | completed | 100.0 | step 0.2000 s, data 0.0500, compute and communication 0.1500 "
            "(not told apart) | unsplit | use bench. |") in text
    summary = text[text.index("## Summary"):text.index("\n## ", text.index("## Summary"))]
    assert summary.rstrip().endswith("| data |")


def test_summary_first_details_last_and_the_page_self_contained(tmp_path):
    two_systems(tmp_path / "runs")
    make_report([str(tmp_path / "runs" / "*")], tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    heads = [h for h in re.findall(r"^## (.+?)(?::| on |$)", text, re.M)]
    assert heads == ["Summary", "Comparison", "Scaling", "Scaling", "Plots", "Per-run details", "Environment"]
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Comparison") < page.index("<h2>Per-run details</h2>")
    for needle in ("http://", "https://", "<script", "<link", "url(", "@import"):
        assert needle not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(list((tmp_path / "rep").glob("*.png"))) == 6
    assert all(s.startswith("data:image/png;base64,") for s in sources)
