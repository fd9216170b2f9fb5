"""House rule: only jeoparda/cluster/env.py reads launcher variables (Slurm, Open MPI, PMI/PMIx,
MVAPICH, torchrun, Horovod, the rendezvous). Everything else asks ClusterEnv."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "jeoparda"
READER = PACKAGE / "cluster" / "env.py"
#: A string that is, whole, a launcher variable's name or the prefix of a family of them.
LAUNCHER_VAR = re.compile(
    r"(SLURM|SBATCH|SRUN|OMPI|OPAL|PRTE|PMI|PMIX|MPI|MV2|I_MPI|HYDRA|HOROVOD|TORCHELASTIC)_[A-Z0-9_]*"
    r"|(LOCAL_|GROUP_|ROLE_|NODE_)?RANK|(LOCAL_|GROUP_|ROLE_)?WORLD_SIZE|MASTER_(ADDR|PORT)")


def launcher_names(source: str) -> list[tuple[int, str]]:
    """(line, name) of every string literal in ``source`` that names a launcher variable."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and LAUNCHER_VAR.fullmatch(node.value)]


def test_the_scan_sees_a_launcher_read():
    assert launcher_names('import os\nn = os.environ.get("SLURM_CPUS_PER_TASK", "")\n') == [(2, "SLURM_CPUS_PER_TASK")]
    assert launcher_names('k = f"OMPI_{x}"\nr = env["RANK"]\np = getenv("MASTER_PORT")\n') == [
        (1, "OMPI_"), (2, "RANK"), (3, "MASTER_PORT")]
    assert launcher_names('raise E("set MASTER_ADDR and MASTER_PORT")\n') == []  # prose naming them is fine


def test_only_cluster_env_reads_launcher_variables():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
             for path in sorted(PACKAGE.rglob("*.py")) if path != READER
             for line, name in launcher_names(path.read_text(encoding="utf-8"))]
    assert found == [], "launcher variables read outside jeoparda/cluster/env.py (add a ClusterEnv field):\n" + \
        "\n".join(found)
    assert launcher_names(READER.read_text(encoding="utf-8"))  # the scan does see env.py's own reads
