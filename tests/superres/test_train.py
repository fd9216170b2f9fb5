import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from jeoparda.errors import JeopardaError
from jeoparda.superres.model_file import load_model
from jeoparda.superres.train import SRTrainOptions, train_sr
from tests.convert.test_run_mpi import mpi_env, mpirun


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_training_writes_model_log_and_held_out_figures(sr_model):
    model = load_model(sr_model)
    assert model.eval["split"] == "val" and model.eval["patches"] == 4
    for key in ("rmse_20m", "sre_60m", "sam_20m", "bicubic_rmse_20m", "bilinear_sam_60m", "rmse_B05", "rmse_B09"):
        assert key in model.eval
    events = _events(sr_model.parent / "run")
    assert [e["event"] for e in events] == ["run_start", "sr_steps", "sr_steps", "run_end"]
    assert events[0]["task"] == "superres" and events[0]["world_size"] == 1
    start = events[0]
    assert start["system"] and start["system_info"]["filesystem"]["path"] == os.path.realpath(start["dataset"])
    assert events[-1]["model_sha256"] == hashlib.sha256(sr_model.read_bytes()).hexdigest()
    assert events[-1]["status"] == "completed"


def test_training_beats_bicubic_on_held_out_patches(archive_master, tmp_path):
    """A few hundred steps already sharpen the 60 m bands past interpolation (the 20 m ones need more)."""
    opts = SRTrainOptions(data=archive_master, out=tmp_path / "sr.pt", run_dir=tmp_path / "run", steps=300,
                          patches=33, eval_patches=8, features=16, blocks=2, backend="single", log_every=100)
    figures = train_sr(opts, say=lambda line: None)
    assert figures["rmse_60m"] < figures["bicubic_rmse_60m"]
    losses = [e["loss_60m"] for e in _events(tmp_path / "run") if e["event"] == "sr_steps"]
    assert losses[-1] < losses[0]


def test_a_used_run_folder_and_bad_settings_are_refused(sr_model, archive_master, tmp_path):
    with pytest.raises(JeopardaError, match="already holds a run"):
        train_sr(SRTrainOptions(data=archive_master, out=tmp_path / "x.pt", run_dir=sr_model.parent / "run",
                                steps=1, backend="single"))
    with pytest.raises(JeopardaError, match="--steps must be at least 1"):
        train_sr(SRTrainOptions(data=archive_master, out=tmp_path / "x.pt", steps=0))
    with pytest.raises(JeopardaError, match="--mtf"):
        train_sr(SRTrainOptions(data=archive_master, out=tmp_path / "x.pt", mtf=1.5))
    assert not (tmp_path / "x.pt").exists()


def _launcher(name: str) -> tuple[list[str], dict[str, str]]:
    if name == "torchrun":
        exe = shutil.which("torchrun", path=os.path.dirname(sys.executable))
        if exe is None:
            pytest.skip("torchrun not found")
        return [exe, "--standalone", "--nproc-per-node", "2", "-m", "jeoparda"], {**os.environ, "OMP_NUM_THREADS": "1"}
    return [mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda"], mpi_env()


@pytest.mark.mpi
@pytest.mark.parametrize("launcher,backend", [("mpirun", "ddp"), ("mpirun", "horovod"), ("torchrun", "ddp")])
def test_two_ranks_train_one_model(archive_master, tmp_path, launcher, backend):
    if backend == "horovod":
        pytest.importorskip("horovod.torch", reason="Horovod not built (make horovod)")
    start, env = _launcher(launcher)
    proc = subprocess.run([*start, "sr", "train",
                           "--data", str(archive_master), "--out", str(tmp_path / "sr.pt"), "--run-dir",
                           str(tmp_path / "run"), "--steps", "10", "--patches", "10", "--eval-patches", "2",
                           "--features", "8", "--blocks", "1", "--backend", backend],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = _events(tmp_path / "run")
    assert events[0]["world_size"] == 2 and events[0]["backend"] == backend and events[0]["train_patches"] == 5
    assert events[-1]["status"] == "completed"  # rank 0 saw both ranks' weights agree
    assert proc.stdout.count("model: ") == 1
    training = load_model(tmp_path / "sr.pt").training
    assert (training["world_size"], training["patches"]) == (2, 10)


def test_one_ranks_bad_data_ends_every_rank_after_one_check(monkeypatch, tmp_path):
    """Rank 1 cannot read its patches: rank 0 raises its message, rank 1 an empty error, and neither
    waits on a second check (two ranks as threads over an in-memory comm)."""
    from jeoparda.superres import train as sr_train
    from tests.cluster.test_session import on_ranks

    def load_split(data, split, count, share):
        if share[0] == 1:
            raise JeopardaError(f"{data}: rank 1 cannot read")
        return []

    monkeypatch.setattr(sr_train, "load_split", load_split)

    def pools(comm):
        comm.world_size = 2
        return sr_train._pools(SRTrainOptions(data=tmp_path, out=tmp_path / "x.pt"), comm)

    results, log = on_ranks(2, pools)
    assert [str(r) for r in results] == [f"{tmp_path}: rank 1 cannot read", ""]
    assert all(isinstance(r, JeopardaError) for r in results) and sorted(log) == ["gather 0", "gather 1"]


def test_the_cli_options_name_every_loss_and_parse_without_torch():
    import subprocess
    import sys

    from jeoparda.superres.options import LOSS_NAMES
    from jeoparda.superres.train import LOSSES

    assert tuple(LOSSES) == LOSS_NAMES
    code = ("import sys; from jeoparda.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
