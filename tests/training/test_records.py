"""The results log's records: docs/results-log.md agrees with them, they round-trip, and the one
reader reads logs of today and of before the schema version."""
import dataclasses
import json
import math
import re
import warnings
from pathlib import Path

import pytest

from jeoparda.training.records import (
    LEGACY_QUALITY,
    RECORDS,
    SCHEMA_VERSION,
    Epoch,
    LogError,
    Record,
    RunEnd,
    RunStart,
    SRSteps,
    read_log,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "results-log.md"


def doc_tables() -> dict[str, dict[str, dict[str, str]]]:
    """{section: {field: {type, unit, default, meaning}}} of every field table in the doc."""
    tables: dict[str, dict[str, dict[str, str]]] = {}
    section = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("| `") and section:
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if len(cells) == 5:
                name, kind, unit, default, meaning = cells
                tables.setdefault(section, {})[name.strip("`")] = {"type": kind, "unit": unit, "default": default,
                                                                   "meaning": meaning}
    return tables


def own_fields(record: type[Record]) -> list[dataclasses.Field]:
    common = {f.name for f in dataclasses.fields(Record)}
    return [f for f in dataclasses.fields(record) if f.name not in common]


def documented_default(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "required"
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return f"`{json.dumps(value)}`" if isinstance(value, dict) else "now"
    if f.default is None:
        return "null" if f.metadata.get("null") else "—"
    return f"`{json.dumps(f.default)}`"


def test_the_doc_documents_every_record_and_only_those():
    tables = doc_tables()
    assert set(tables) == {"Every record", *RECORDS}
    common = tables["Every record"]
    assert set(common) == {"event", *(f.name for f in dataclasses.fields(Record))}


@pytest.mark.parametrize("event", sorted(RECORDS))
def test_every_field_is_documented_and_every_documented_field_exists(event):
    record, documented = RECORDS[event], doc_tables()[event]
    fields = {f.name: f for f in own_fields(record)}
    assert sorted(fields) == sorted(documented), f"{event}: fields and docs/results-log.md differ"
    assert list(fields) == list(documented), f"{event}: the doc lists the fields in another order"
    for name, f in fields.items():
        row = documented[name]
        assert row["type"] == f.type, f"{event}.{name}: documented as {row['type']}, declared {f.type}"
        assert row["default"] == documented_default(f), f"{event}.{name}: default"
        assert row["meaning"], f"{event}.{name}: no meaning documented"


def test_the_doc_states_the_current_version():
    assert f"describes version **{SCHEMA_VERSION}**" in DOC.read_text(encoding="utf-8")


START = dict(model="resnet50", task="singlelabel", quality_key="accuracy", quality_label="accuracy",
             dataset="eurosat", data_backend="torch", world_size=2, nodes=1, global_batch_size=64, mode="weak")


@pytest.mark.parametrize("record", [
    RunStart(**START, run_id="r", bands=["B02"], hosts=["n1"], versions={"torch": "2.13", "dali": None},
             system="juwels", extra={"site_note": "new partition"}),
    Epoch(epoch=1, epoch_time_s=2.0, images_per_s=50.0, train_images=100, energy_sources=[],
          energy_note="no counter", metrics={"accuracy": 0.9, "confusion_matrix": [[1, 0], [0, 1]], "samples": 2}),
    Epoch(epoch=2, epoch_time_s=2.0, images_per_s=50.0, time_to_target_s=3.5, target_epoch=2),
    RunEnd(status="completed", total_time_s=9.0, epochs=2, val={"accuracy": 0.9}, test={}, replica_sha256=["a", "a"],
           target={"metric": "accuracy", "value": 0.8}, time_to_target_s=3.5, target_epoch=2,
           metrics={"accuracy": 0.9}),
    RunEnd(status="completed", eval={"rmse_20m": 1.0}, model="sr.pt", model_sha256="b", replica_sha256="c"),
    SRSteps(step=50, loss_20m=1.0, loss_60m=2.0, lr=1e-3, steps_time_s=3.0, windows_per_s=100.0),
])
def test_records_round_trip_through_a_json_line(record):
    line = json.loads(json.dumps(record.to_json()))
    assert line["event"] == record.EVENT and line["time"] == record.time
    assert type(record).from_json(line) == record
    assert type(record).from_json(line).to_json() == line


def test_absent_values_are_left_out_except_the_null_fields():
    line = Epoch(epoch=1, epoch_time_s=1.0, images_per_s=1.0, metrics={"f1_samples": 0.5}).to_json()
    assert line["energy_j"] is None and line["energy_per_image_j"] is None  # harnesses index these
    assert "time_to_target_s" not in line and "lr" not in line and "metrics" not in line
    assert line["f1_samples"] == 0.5  # the open field is written flat
    end = RunEnd(status="preempted").to_json()
    assert {k for k, v in end.items() if v is None} == {"energy_j", "replica_sha256", "target", "time_to_target_s",
                                                        "target_epoch"}
    start = RunStart(**START).to_json()
    assert start["schema"] == SCHEMA_VERSION and start["job"] == "train" and start["resumed_from"] is None


def test_an_open_field_may_not_repeat_a_declared_one():
    with pytest.raises(ValueError, match="repeats declared fields loss"):
        Epoch(epoch=1, epoch_time_s=1.0, images_per_s=1.0, metrics={"loss": 1.0}).to_json()


def write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


LEGACY = [{"event": "run_start", "time": 0, "model": "resnet50", "data_backend": "synthetic", "world_size": 2},
          {"event": "epoch", "time": 1, "epoch": 1, "images_per_s": 10.0, "epoch_time_s": 3.0, "f1_samples": 0.4},
          {"event": "run_end", "time": 2, "status": "completed", "f1_samples": 0.5}]


def test_a_log_before_the_schema_version_gets_the_legacy_defaults(tmp_path):
    log = read_log(write(tmp_path / "results.jsonl", LEGACY))
    start = log.start
    assert (start.schema, start.job, start.task, start.mode, start.nodes, start.global_batch_size, start.dataset) \
        == (0, "train", "multilabel", "none", 1, 0, "")
    assert (start.quality_key, start.quality_label) == LEGACY_QUALITY["multilabel"] == ("f1_samples", "F1 (samples)")
    assert log.epochs[0].metrics == {"f1_samples": 0.4} and log.end is not None and log.end.metrics["f1_samples"] == 0.5
    segmentation = [{**LEGACY[0], "task": "segmentation", "mode": "strong"}, *LEGACY[1:]]
    start = read_log(write(tmp_path / "seg.jsonl", segmentation)).start
    assert (start.quality_key, start.quality_label, start.mode) == ("miou", "mIoU", "strong")
    sr = read_log(write(tmp_path / "sr.jsonl", [{**LEGACY[0], "task": "superres"}])).start
    assert (sr.job, sr.quality_key) == ("sr", None)


def test_a_versioned_log_says_what_it_means(tmp_path):
    lines = [RunStart(**START, job="bench").to_json(),
             Epoch(epoch=1, epoch_time_s=1.0, images_per_s=5.0).to_json(),
             {"event": "something_later", "time": 3},  # an event this reader does not know: passed over
             RunEnd(status="preempted").to_json(), RunEnd(status="completed", metrics={"accuracy": 0.7}).to_json()]
    log = read_log(write(tmp_path / "results.jsonl", lines).parent)  # a run folder does as well
    assert (log.start.schema, log.start.job, log.start.task, log.start.quality_key) == (1, "bench", "singlelabel",
                                                                                        "accuracy")
    assert len(log.epochs) == 1 and log.end is not None and log.end.status == "completed"  # the last run_end
    newer = write(tmp_path / "newer.jsonl", [{**lines[0], "schema": SCHEMA_VERSION + 1, "new_key": 1}])
    with pytest.warns(UserWarning, match="newer than"):
        assert read_log(newer).start.extra == {"new_key": 1}
    # no quality table for a versioned log: what it does not name stays unnamed
    unnamed = {k: v for k, v in lines[0].items() if k not in ("quality_key", "quality_label")}
    assert read_log(write(tmp_path / "unnamed.jsonl", [unnamed])).start.quality_key is None


@pytest.mark.parametrize("lines,why", [
    (['{"event": "run_start", "time": 0}', "{not json"], "unreadable results log"),
    (['[1, 2]'], "not a JSON object"),
    ([json.dumps(LEGACY[1])], "no run_start event"),
    ([json.dumps({k: v for k, v in LEGACY[0].items() if k != "model"})], "run_start lacks model"),
    ([json.dumps({**LEGACY[0], "world_size": "two"})], "line 1: run_start field world_size is 'two', not an integer"),
])
def test_a_damaged_log_is_one_error_naming_the_file(tmp_path, lines, why):
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LogError, match=why) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_log(path)
    assert info.value.path == path and str(info.value).startswith(f"{path}: ")


_EPOCH = {"event": "epoch", "time": 1, "epoch": 1, "epoch_time_s": 2.0, "images_per_s": 10.0}


@pytest.mark.parametrize("bad, why", [
    ({**_EPOCH, "images_per_s": "fast"}, "epoch field images_per_s is 'fast', not a finite number"),
    ({k: v for k, v in _EPOCH.items() if k != "epoch_time_s"}, "epoch lacks epoch_time_s"),
    ({**_EPOCH, "images_per_s": float("nan")}, "epoch field images_per_s is nan, not a finite number"),
    ({**_EPOCH, "epoch_time_s": float("inf")}, "epoch field epoch_time_s is inf, not a finite number"),
    ({**_EPOCH, "epoch": 1.5}, "epoch field epoch is 1.5, not an integer"),
    ({**_EPOCH, "images_per_s": True}, "epoch field images_per_s is True"),
    ({**_EPOCH, "energy_per_image_j": "x"}, "epoch field energy_per_image_j is 'x'"),
    ({"event": "run_end", "time": 2, "status": 3}, "run_end field status is 3, not text"),
    ({"event": "run_end", "time": 2, "status": "completed", "time_to_target_s": "soon"},
     "run_end field time_to_target_s is 'soon'"),
])
def test_a_malformed_record_line_is_skipped_with_a_warning_naming_file_and_line(tmp_path, bad, why):
    path = tmp_path / "results.jsonl"
    good = {**_EPOCH, "epoch": 2, "images_per_s": 30.0}
    path.write_text("\n".join(json.dumps(x) for x in (LEGACY[0], _EPOCH, bad, good)) + "\n")
    with pytest.warns(UserWarning) as caught:
        log = read_log(path)
    assert len(caught) == 1 and str(caught[0].message).startswith(f"{path}:3: skipped, ")
    assert why in str(caught[0].message)
    assert [e.images_per_s for e in log.epochs] == [10.0, 30.0]


def test_a_diverged_loss_is_kept_as_a_fact(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (LEGACY[0], {**_EPOCH, "loss": float("nan")})) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(read_log(path).epochs[0].loss)


def test_the_writers_logs_read_back_line_for_line(tmp_path, sr_model):
    """Every line jeoparda writes (bench train here, sr train from its fixture) is a record that
    writes itself back unchanged: the records declare what the writers write."""
    from jeoparda.bench.train_bench import bench_train
    from jeoparda.config import load_config

    cfg = load_config([], ["data.backend=synthetic", "model=resnet18", "train.batch_size=2", "train.threads=1",
                           "dist.backend=single"])
    bench_train(cfg, tmp_path / "bench", warmup=1, steps=1, blocks=2, say=lambda s: None)
    for folder, job in ((tmp_path / "bench", "bench"), (sr_model.parent / "run", "sr")):
        lines = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
        for line in lines:
            assert RECORDS[line["event"]].from_json(line).to_json() == line
        start = read_log(folder).start
        assert start.schema == SCHEMA_VERSION and start.job == job
    bench = read_log(tmp_path / "bench").start
    assert (bench.task, bench.quality_key, bench.quality_label) == ("multilabel", "f1_samples", "F1 (samples)")
