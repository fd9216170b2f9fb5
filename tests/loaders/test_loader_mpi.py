"""A real ``mpirun -np 2``: each rank's loader, exactly-once evaluation, equal steps."""
import json
import subprocess
import sys

import pytest

from tests.convert.test_run_mpi import mpi_env, mpirun

pytestmark = pytest.mark.mpi

SCRIPT = """
import hashlib, json, sys
from jeoparda.config import AugmentConfig, DataConfig, RunConfig, TrainConfig
from jeoparda.loaders.build import build_loader
from jeoparda.cluster.env import detect
if __name__ == "__main__":  # reader processes import the main module again
    env = detect()
    cfg = RunConfig(data=DataConfig(path=sys.argv[1], workers=1, block_size=2),
                    train=TrainConfig(batch_size=5, seed=1))
    out = {"rank": env.rank, "world": env.world_size}
    for split in ("train", "val"):
        loader = build_loader(cfg, env, split)
        keys = [hashlib.sha1(i.numpy().tobytes()).hexdigest() for b in loader
                for i, m in zip(b["image"], b["mask"]) if m]
        out[split] = {"steps": loader.steps_per_epoch, "keys": keys}
    json.dump(out, open(f"{sys.argv[2]}/rank{env.rank}.json", "w"))
"""


def test_two_ranks_under_mpirun(dataset, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, str(script),
                           str(dataset), str(tmp_path)], capture_output=True, text=True,
                          env=mpi_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    for split in ("train", "val"):
        assert ranks[0][split]["steps"] == ranks[1][split]["steps"]
        keys = ranks[0][split]["keys"] + ranks[1][split]["keys"]
        assert len(keys) == len(set(keys))
    assert len(ranks[0]["train"]["keys"]) == 15  # 34 patches, 2 ranks x batch 5: 3 steps each
    assert len(ranks[0]["val"]["keys"]) + len(ranks[1]["val"]["keys"]) == 7
