"""jeoparda bench allreduce: sizes, the bandwidth definitions, and a real 2-rank run."""
import json
import subprocess
import sys

import pytest

from jeoparda.bench.allreduce_bench import message_sizes, run
from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import DistConfig
from jeoparda.models.complexity import gradient_bytes
from tests.convert.test_run_mpi import mpi_env, mpirun


def test_sizes_run_from_4k_to_the_resnet50_gradients():
    top = gradient_bytes("resnet50")
    assert top == 4 * 23_575_187
    sizes = message_sizes(top)
    assert sizes[0] == 4096 and sizes[-1] == top and all(b == 2 * a for a, b in zip(sizes[:-2], sizes[1:-1]))


def test_one_process_has_no_bus_traffic():
    rows = run(Backend(ClusterEnv(), DistConfig(backend="single")), [4096, 8192], iters=2)
    assert [r["bytes"] for r in rows] == [4096, 8192]
    assert all(r["time_us"] > 0 and r["busbw_gb_s"] == 0 for r in rows)


@pytest.mark.mpi
def test_two_ranks_under_mpirun():
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "bench",
                           "allreduce", "--max-bytes", "65536", "--iters", "2", "--json"],
                          capture_output=True, text=True, env=mpi_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["backend"], result["world_size"]) == ("ddp", 2)
    assert [r["bytes"] for r in result["sizes"]] == [4096, 8192, 16384, 32768, 65536]
    for r in result["sizes"]:
        assert r["time_us"] > 0 and r["busbw_gb_s"] == pytest.approx(r["algbw_gb_s"])  # 2(n-1)/n = 1
