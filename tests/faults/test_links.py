"""Links planted in every folder jeoparda writes (issue 22, docs/reliability.md): a converted data
set, a run folder, a report folder, a super-resolution run, a staging folder. The folder the user
names may be a link; a link inside it is refused with one line, its target stays byte-identical and
nothing new appears beside it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jeoparda.cli import main
from jeoparda.cluster.env import ClusterEnv
from jeoparda.convert.plan import ConvertOptions, make_plan
from jeoparda.convert.run import WORK_DIR, convert_local, prepare_out
from jeoparda.errors import JeopardaError
from jeoparda.loaders.staging import stage_dir_for, stage_shards
from jeoparda.safe_files import UnsafePathError, temp_name
from jeoparda.shards.manifest import read_manifest
from tests.inference.test_predict import block  # noqa: F401  (the fixture)
from tests.report.test_scaling import write_run

LINK_REFUSED = "is a symbolic link; jeoparda does not follow links"


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder of the user's that a planted link points into; convert --overwrite once deleted its
    ``*.tmp-*`` files and wrote shards into it."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "precious.txt").write_bytes(b"the user's own\n")
    (folder / "draft.tmp-1").write_bytes(b"not jeoparda's temp file\n")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def refused(capsys, link: Path) -> None:
    """The CLI's stderr: one error line, naming the link, no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("jeoparda: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0] == f"jeoparda: error: {link}: {LINK_REFUSED} inside the folders it writes (remove the link)"


# --- jeoparda convert --out OUT ---------------------------------------------------------------------

@pytest.mark.parametrize("overwrite", [True, False], ids=["--overwrite", "plain"])
@pytest.mark.parametrize("name", ["train", "test", WORK_DIR])
def test_convert_refuses_a_link_at_a_folder_it_writes(archive_master, tmp_path, victim, capsys, name, overwrite):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    before = snapshot(victim)
    argv = ["convert", "--source", str(archive_master), "--out", str(out), "--shard-size", "8"]
    assert main(argv + (["--overwrite"] if overwrite else [])) == 1
    refused(capsys, out / name)
    assert snapshot(victim) == before and (out / name).is_symlink()


def test_convert_refuses_a_link_at_the_manifest(archive_master, tmp_path, victim, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").symlink_to(victim / "precious.txt")
    before = snapshot(victim)
    assert main(["convert", "--source", str(archive_master), "--out", str(out), "--overwrite"]) == 1
    refused(capsys, out / "manifest.json")
    assert snapshot(victim) == before


def test_convert_may_write_into_a_folder_named_by_a_link(archive_master, tmp_path, capsys):
    """The folder the user names is theirs to choose, link or not."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    assert main(["convert", "--source", str(archive_master), "--out", str(tmp_path / "out"), "--shard-size", "16"]) == 0
    assert (real / "manifest.json").is_file() and sorted(p.name for p in (real / "train").iterdir())


def test_a_link_at_a_shard_is_refused_and_one_at_its_temp_file_replaced(archive_master, tmp_path, victim):
    out = tmp_path / "out"
    opts = ConvertOptions(source=archive_master, out=out, shard_size=8)
    plan = make_plan(opts)
    assert prepare_out(opts, plan) == "fresh"
    first, second = plan.chunks[:2]
    (out / first.file).symlink_to(victim / "new.h5")
    temp_name(out / second.file).symlink_to(victim / "precious.txt")  # a leftover "of this PID"
    before = snapshot(victim)
    with pytest.raises(UnsafePathError, match=LINK_REFUSED) as err:
        convert_local([first], plan, opts, lambda n: None)
    assert str(err.value).startswith(f"{out / first.file}: ")
    [record] = convert_local([second], plan, opts, lambda n: None)
    assert record["patches"] and (out / second.file).is_file() and not (out / second.file).is_symlink()
    assert not os.path.lexists(temp_name(out / second.file))
    assert snapshot(victim) == before


def test_a_dead_conversions_temp_files_are_swept(archive_master, tmp_path):
    out = tmp_path / "out"
    opts = ConvertOptions(source=archive_master, out=out, shard_size=8)
    plan = make_plan(opts)
    prepare_out(opts, plan)
    convert_local(plan.chunks[:1], plan, opts, lambda n: None)  # then "killed" while writing:
    dead = dead_pid()
    shard = out / plan.chunks[1].file
    left = [out / f".manifest.json.tmp-{dead}", shard.with_name(f".{shard.name}.tmp-{dead}"),
            out / WORK_DIR / "records" / f".x.json.tmp-{dead}"]
    for path in left:
        path.write_bytes(b"half")
    assert main(["convert", "--source", str(archive_master), "--out", str(out), "--shard-size", "8"]) == 0
    assert not [p for p in left if p.exists()]
    assert not list(out.rglob("*.tmp-*"))


# --- the run folder: jeoparda train --out RUN_DIR ---------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name,target", [("config.yaml", "precious.txt"), ("mllog.txt", "precious.txt"),
                                         ("results.jsonl", "new.jsonl")])
def test_train_refuses_a_link_at_a_run_file(dataset, tmp_path, victim, name, target):
    run = tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(victim / target)  # results.jsonl: to a new file (an existing one means "a run")
    before = snapshot(victim)
    sets = [f"data.path={dataset}", "model=resnet18", "train.batch_size=4", "data.workers=0", "train.epochs=1",
            "train.max_steps=1", "dist.backend=single"]
    proc = subprocess.run([sys.executable, "-m", "jeoparda", "train", "--out", str(run)]
                          + [a for s in sets for a in ("--set", s)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"jeoparda: error: {run / name}: {LINK_REFUSED} inside the " \
                                                   "folders it writes (remove the link)"
    assert snapshot(victim) == before


# --- jeoparda report --out, project, predict's quick look --------------------------------------------

@pytest.mark.parametrize("name", ["scaling.csv", "summary.json", "report.md", "report.html", "throughput.png"])
def test_report_refuses_a_link_in_its_out_folder(tmp_path, victim, capsys, name):
    write_run(tmp_path / "run1", 1, rates=[1, 10])
    write_run(tmp_path / "run2", 2, rates=[1, 19])
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / name).symlink_to(victim / "precious.txt")
    before = snapshot(victim)
    assert main(["report", str(tmp_path / "run*"), "--out", str(rep)]) == 1
    refused(capsys, rep / name)
    assert snapshot(victim) == before


@pytest.mark.parametrize("name", ["map.tif", "map-probability.tif", "map.png", ".map.tif.classes.scratch",
                                  ".map.tif.probability.scratch"])
def test_predict_never_writes_through_a_link_beside_its_map(block, tmp_path, victim, name):  # noqa: F811
    """A link at the map's name is replaced by the map (renamed over, not followed); a link at the quick
    look's or a scratch file's name is refused."""
    import torch

    from jeoparda.inference.predict import Options, predict
    from tests.inference.test_predict import TILE

    out = tmp_path / "maps"
    out.mkdir()
    (out / name).symlink_to(victim / "precious.txt")
    before = snapshot(victim)
    run = lambda: predict(torch.nn.Conv2d(12, 19, 1), block / "data", [TILE], out / "map.tif",  # noqa: E731
                          Options(probabilities=True))
    if name.endswith(".tif"):
        run()
        assert not (out / name).is_symlink() and (out / name).read_bytes()[:4] == b"II*\0"
    else:
        if name.endswith(".png"):
            pytest.importorskip("matplotlib")
        with pytest.raises(UnsafePathError, match=LINK_REFUSED):
            run()
    assert snapshot(victim) == before


# --- jeoparda sr train --------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["results.jsonl", "model"])
def test_sr_train_refuses_a_link_at_its_log_or_model_file(archive_master, tmp_path, victim, where):
    from jeoparda.superres.train import SRTrainOptions, train_sr

    run, model = tmp_path / "run", tmp_path / "sr.pt"
    run.mkdir()
    link = run / "results.jsonl" if where == "results.jsonl" else model
    link.symlink_to(victim / ("new.jsonl" if where == "results.jsonl" else "precious.txt"))
    before = snapshot(victim)
    opts = SRTrainOptions(data=archive_master, out=model, run_dir=run, steps=2, patches=4, eval_patches=2,
                          features=4, blocks=1, backend="single", log_every=1)
    with pytest.raises(JeopardaError, match=LINK_REFUSED) as err:
        train_sr(opts, say=lambda line: None)
    assert str(err.value).startswith(f"{link}: ")
    assert snapshot(victim) == before


# --- the staging folder ---------------------------------------------------------------------------------

def test_staging_refuses_a_planted_stage_folder(dataset, tmp_path, victim):
    manifest = read_manifest(dataset)
    shards = manifest["splits"]["train"]["shards"]
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_dir_for(manifest, str(stage)).symlink_to(victim)  # planted under a shared /tmp before the job
    before = snapshot(victim)
    for env in (ClusterEnv(local_rank=0, local_size=2), ClusterEnv(rank=1, local_rank=1, local_size=2)):
        with pytest.raises(JeopardaError, match=LINK_REFUSED):
            stage_shards(dataset, manifest, shards, str(stage), env, wait_limit_s=5)
    assert snapshot(victim) == before
