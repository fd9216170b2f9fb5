"""containers/jeoparda.def, checked statically (Apptainer cannot be installed here): it parses,
starts from a CUDA PyTorch image, runs `jeoparda "$@"`, copies everything the package needs to
build, and installs what setup.cfg declares."""
import configparser
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

spython = pytest.importorskip("spython", reason="the test extra installs spython")
from spython.main.parse.parsers import SingularityParser  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEF = REPO / "containers" / "jeoparda.def"


@pytest.fixture(scope="module")
def recipe():
    return SingularityParser(str(DEF)).recipe["spython-base"]


@pytest.fixture(scope="module")
def setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def copied(recipe) -> dict[str, str]:
    """%files: source in the repository -> destination in the image."""
    return dict(line.split() for line in recipe.files)


def test_header_and_base_image(recipe):
    assert DEF.read_text().splitlines()[0] == "Bootstrap: docker"
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3", recipe.fromHeader)


def test_runscript_runs_jeoparda_with_all_arguments(recipe):
    assert recipe.cmd.strip() == 'exec jeoparda "$@"'


def test_post_installs_the_package_with_the_mpi_and_dali_extras(recipe, setup_cfg):
    post = "\n".join(recipe.install)
    installs = re.findall(r'pip install [^\n]*"(/opt/jeoparda)\[([a-z,]+)\]"', post)
    assert len(installs) == 1
    target, extras = installs[0]
    assert set(copied(recipe).values()) >= {f"{target}/setup.cfg", f"{target}/jeoparda"}
    declared = set(setup_cfg["options.extras_require"])
    assert {"mpi", "dali"} <= set(extras.split(",")) <= declared
    # the image's CUDA PyTorch is kept (setup.cfg asks torch>=2.1): nothing installs another one
    assert not any("torch" in line for line in recipe.install if "pip install" in line)
    # Horovod, optional, through the same build script as `make install`, at setup.cfg's version
    assert "/opt/jeoparda/scripts/install_horovod.sh" in post and "{{ WITH_HOROVOD }}" in post
    wanted = re.search(r"horovod>=([\d.]+)", setup_cfg["options.extras_require"]["horovod"]).group(1)
    assert f"version={wanted}" in (REPO / "scripts" / "install_horovod.sh").read_text()


def test_files_exist_and_build_an_installable_package(recipe, tmp_path):
    """Copy %files as Apptainer would and build a wheel from the copy: nothing the build needs is missing."""
    image_root = tmp_path / "image"
    for src, dest in copied(recipe).items():
        source = REPO / src
        assert source.exists(), f"%files names {src}, which the repository lacks"
        target = image_root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__")) if source.is_dir()
         else shutil.copy2(source, target))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheels"), str(image_root / "opt" / "jeoparda")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheel = next((tmp_path / "wheels").glob("jeoparda-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "jeoparda/cli/__init__.py" in names and "jeoparda/models/bwms.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "jeoparda = jeoparda.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    # the runtime files the image uses: recipes and the job scripts
    assert (image_root / "opt/jeoparda/benchmarks/configs/resnet50.yaml").exists()
    assert (image_root / "opt/jeoparda/slurm/common.sh").exists()


def test_environment_test_and_labels(recipe):
    env = "\n".join(recipe.environ)
    assert "PYTHONNOUSERSITE=1" in env  # the host's ~/.local must not shadow the image's packages
    test = DEF.read_text().split("%test", 1)[1].split("%labels", 1)[0]
    assert "jeoparda --version" in test and "import torch, h5py, mpi4py, nvidia.dali" in test
    labels = dict(line.split(None, 1) for line in recipe.labels)
    assert labels["org.opencontainers.image.title"] == "jeoparda"
    assert labels["org.opencontainers.image.base.name"] == recipe.fromHeader
