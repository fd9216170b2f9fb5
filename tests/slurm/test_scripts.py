"""The slurm/ scripts without a cluster: every jeoparda command line they build is run through a
stand-in srun/sbatch/scontrol and parsed by jeoparda's own parser and configuration loader, so
their flags cannot drift from what jeoparda accepts."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jeoparda.cli import build_parser
from jeoparda.config import load_config
from jeoparda.training.preempt import EXIT_PREEMPTED
from tests.slurm.conftest import REPO

SCRIPTS = sorted(p.name for p in (REPO / "slurm").glob("*.sh"))
TRAIN_SCRIPTS = [s for s in SCRIPTS if s.startswith("train_")]
RECORDER = """#!{python}
import json, os, sys
with open(os.environ["RECORD"], "a") as fh:
    fh.write(json.dumps(["{name}", *sys.argv[1:]]) + "\\n")
    print(fh.tell())  # a distinct job id, for the stand-in sbatch
sys.exit(int(os.environ.get("{var}", "0")))
"""
# The jobs ask jeoparda questions on the batch host (jeoparda config get): this checkout answers, directly
# or as if inside the image (apptainer exec [OPTIONS] IMAGE jeoparda ARGS...).
JEOPARDA = """#!{python}
import sys
sys.path.insert(0, {repo!r})
from jeoparda.cli import main
sys.exit(main())
"""
APPTAINER = """#!/bin/bash
while [ "$#" -gt 0 ] && [ "$1" != jeoparda ]; do shift; done
shift
exec jeoparda "$@"
"""


def run_script(tmp_path, argv, srun_exit=0, **env_extra):
    """Run a slurm/ script with recording stand-ins for srun, sbatch and scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, var in (("srun", "SRUN_EXIT"), ("sbatch", "SBATCH_EXIT"), ("scontrol", "SCONTROL_EXIT")):
        (bin_dir / name).write_text(RECORDER.format(python=sys.executable, name=name, var=var))
        (bin_dir / name).chmod(0o755)
    (bin_dir / "jeoparda").write_text(JEOPARDA.format(python=sys.executable, repo=str(REPO)))
    (bin_dir / "apptainer").write_text(APPTAINER)
    for name in ("jeoparda", "apptainer"):
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "calls.jsonl"
    record.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", RECORD=str(record), SRUN_EXIT=str(srun_exit),
               SLURM_SUBMIT_DIR=str(REPO), SLURM_JOB_ID="4242", **env_extra)
    proc = subprocess.run(["bash", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return proc, calls


def jeoparda_argv(call):
    """The `jeoparda ...` part of a recorded srun call, checked to be a launch line we support."""
    assert call[0] == "srun" and call[1].startswith("--mpi=")
    return call[call.index("jeoparda") + 1:]


@pytest.mark.parametrize("script", TRAIN_SCRIPTS)
@pytest.mark.parametrize("restarts", ["0", "1"])
def test_train_scripts_build_a_valid_jeoparda_train(script, restarts, tmp_path):
    proc, calls = run_script(tmp_path, [f"slurm/{script}", "--set", "data.path=/data", "--out", "RUN"],
                             SLURM_RESTART_COUNT=restarts)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 1
    args = build_parser().parse_args(jeoparda_argv(calls[0]))
    assert args.command == "train" and args.out == Path("RUN")
    assert args.config == [Path(f"benchmarks/configs/{script.removeprefix('train_')[:-3]}.yaml")]
    assert args.resume_if_checkpoint is (restarts == "1") and not args.resume
    cfg = load_config(args.config, args.overrides)  # every --set key exists
    assert cfg.data.path == "/data" and cfg.data.stage_dir


def test_preempted_training_requeues_the_job(tmp_path):
    proc, calls = run_script(tmp_path, ["slurm/train_resnet18.sh"], srun_exit=EXIT_PREEMPTED)
    assert proc.returncode == EXIT_PREEMPTED
    assert calls[-1] == ["scontrol", "requeue", "4242"]
    proc, calls = run_script(tmp_path, ["slurm/train_resnet18.sh"], srun_exit=1)
    assert proc.returncode == 1 and [c[0] for c in calls] == ["srun"]  # a failure is not requeued


def test_container_launch_line(tmp_path):
    image = tmp_path / "img.sif"
    image.write_bytes(b"x")
    proc, calls = run_script(tmp_path, ["slurm/train_bwms.sh"], JEOPARDA_CONTAINER=str(image),
                             JEOPARDA_APPTAINER_ARGS="--bind /scratch")
    assert proc.returncode == 0, proc.stderr
    call = calls[0]
    assert call[3:8] == ["apptainer", "exec", "--nv", "--bind", "/scratch"] and call[8] == str(image)
    build_parser().parse_args(jeoparda_argv(call))
    proc, calls = run_script(tmp_path, ["slurm/train_bwms.sh"], JEOPARDA_CONTAINER=str(tmp_path / "missing.sif"))
    assert proc.returncode == 2 and "missing.sif: no such image" in proc.stderr and not calls


def test_convert_and_report_scripts(tmp_path):
    proc, calls = run_script(tmp_path, ["slurm/convert_bigearthnet.sh", "--source", "A", "--out", "D",
                                        "--workers", "2"])
    assert proc.returncode == 0, proc.stderr
    args = build_parser().parse_args(jeoparda_argv(calls[0]))
    assert (args.command, args.source, args.out, args.workers) == ("convert", Path("A"), Path("D"), 2)
    proc, calls = run_script(tmp_path, ["slurm/report.sh", "runs/*", "--out", "R"])
    args = build_parser().parse_args(jeoparda_argv(calls[0]))
    assert (args.command, args.runs, args.out) == ("report", ["runs/*"], Path("R"))


@pytest.mark.parametrize("axis, scale", [("--nodes", ["--nodes=1", "--nodes=2", "--nodes=4"]),
                                         ("--tasks", ["--ntasks-per-node=1", "--ntasks-per-node=2",
                                                      "--ntasks-per-node=4"])])
def test_scaling_sweep_submits_each_scale_and_a_report(axis, scale, tmp_path):
    out = tmp_path / "sweep"
    proc, calls = run_script(tmp_path, ["slurm/scaling_sweep.sh", axis, "1 2 4", "--script", "slurm/train_resnet18.sh",
                                        "--out", str(out), "--sbatch", "--gres=none --time=00:20:00", "--",
                                        "--set", "train.epochs=3"])
    assert proc.returncode == 0, proc.stderr
    assert [c[0] for c in calls] == ["sbatch"] * 4
    for call, flag in zip(calls[:3], scale):
        script = call.index("slurm/train_resnet18.sh")
        assert flag in call[:script] and "--gres=none" in call[:script] and "--time=00:20:00" in call[:script]
        # what follows the script reaches jeoparda train: parse it the way the script would pass it
        args = build_parser().parse_args(["train", "--config", "benchmarks/configs/resnet18.yaml", *call[script + 1:]])
        load_config(args.config, args.overrides)
        assert str(args.out).startswith(str(out / "runs"))
    report = calls[3]
    assert "--gres=none" in report[:report.index("slurm/report.sh")]
    ids = [line.split("job ")[1].split()[0] for line in proc.stdout.splitlines()[:3]]
    assert f"--dependency=afterany:{':'.join(ids)}" in report
    args = build_parser().parse_args(["report", *report[report.index("slurm/report.sh") + 1:]])
    assert args.runs == [f"{out}/runs/*"] and args.out == out / "report"


def test_scaling_sweep_refuses_bad_input(tmp_path):
    proc, calls = run_script(tmp_path, ["slurm/scaling_sweep.sh", "--nodes", "1 two"])
    assert proc.returncode == 2 and "'two' is not a positive count" in proc.stderr and not calls
    proc, calls = run_script(tmp_path, ["slurm/scaling_sweep.sh", "--script", "slurm/nope.sh"])
    assert proc.returncode == 2 and "slurm/nope.sh: no such job script" in proc.stderr and not calls
    proc, _ = run_script(tmp_path, ["slurm/scaling_sweep.sh", "--help"])
    assert proc.returncode == 0 and "--dependency=afterany" in proc.stdout


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "common.sh"])
def test_scripts_document_themselves_and_use_strict_bash(script):
    text = (REPO / "slurm" / script).read_text()
    assert text.startswith("#!/bin/bash\n# ")
    assert "set -euo pipefail" in text
    assert os.access(REPO / "slurm" / script, os.X_OK)


def test_shellcheck_finds_nothing():
    if shutil.which("shellcheck") is None:
        if os.environ.get("JEOPARDA_REQUIRE_SLURM") == "1":
            pytest.fail("shellcheck missing; scripts/install_system.sh installs it")
        pytest.skip("shellcheck not installed (scripts/install_system.sh installs it)")
    scripts = [str(p) for p in sorted((REPO / "slurm").glob("*.sh")) + sorted((REPO / "scripts").glob("*.sh"))]
    proc = subprocess.run(["shellcheck", "-x", *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("argv,extra,plugin", [
    (["slurm/train_resnet18.sh"], {}, "none"),                                        # DDP: no MPI layer
    (["slurm/train_resnet18.sh", "--set", "dist.backend=horovod"], {}, "pmix"),      # Horovod needs MPI
    (["slurm/train_resnet18.sh", "--set", "dist.backend=horovod"], {"JEOPARDA_SRUN_MPI": "pmi2"}, "pmi2"),
    (["slurm/train_resnet18.sh"], {"JEOPARDA_SRUN_MPI": "pmi2"}, "none"),
    (["slurm/convert_bigearthnet.sh", "--source", "A", "--out", "D"], {}, "pmix"),   # convert's ranks use MPI
    (["slurm/convert_bigearthnet.sh", "--source", "A", "--out", "D"], {"JEOPARDA_SRUN_MPI": "cray_shasta"},
     "cray_shasta"),
    (["slurm/sr_train.sh", "--data", "D", "--out", "m.pt"], {}, "none"),
    (["slurm/sr_train.sh", "--data", "D", "--out", "m.pt", "--backend", "horovod"], {}, "pmix"),
    (["slurm/sr_train.sh", "--data", "D", "--out", "m.pt", "--backend=horovod"], {}, "pmix"),
])
def test_srun_passes_an_mpi_plugin_only_where_mpi_is_used(tmp_path, argv, extra, plugin):
    proc, calls = run_script(tmp_path, argv, **extra)
    assert proc.returncode == 0, proc.stderr
    assert calls[0][1] == f"--mpi={plugin}"


def test_sr_train_script_builds_a_valid_jeoparda_sr_train(tmp_path):
    proc, calls = run_script(tmp_path, ["slurm/sr_train.sh", "--data", "D", "--out", "m.pt", "--steps", "5"])
    assert proc.returncode == 0, proc.stderr
    args = build_parser().parse_args(jeoparda_argv(calls[0]))
    assert (args.command, args.sr_command, args.out, args.steps) == ("sr", "train", Path("m.pt"), 5)


def test_srun_gets_the_jobs_cpus_per_task_and_an_optional_gpu_bind(tmp_path):
    proc, calls = run_script(tmp_path, ["slurm/train_resnet18.sh"], SLURM_CPUS_PER_TASK="8",
                             JEOPARDA_GPU_BIND="closest")
    assert proc.returncode == 0, proc.stderr
    assert calls[0][:6] == ["srun", "--mpi=none", "--cpus-per-task=8", "--gpu-bind=closest", "--kill-on-bad-exit=1",
                            "jeoparda"]
    proc, calls = run_script(tmp_path, ["slurm/train_resnet18.sh"])  # outside a job's CPU setting: nothing
    assert calls[0][:4] == ["srun", "--mpi=none", "--kill-on-bad-exit=1", "jeoparda"]


SRUN_COMMAND = re.compile(r"(?:^|[;&|(]|\b(?:then|do|else|exec))\s*srun\s")


def srun_lines(script):
    """The commands of a script that call srun, continuation lines joined, comments left out."""
    text = (REPO / "slurm" / script).read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()
            if not line.lstrip().startswith("#") and SRUN_COMMAND.search(line.split(" #")[0])]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_srun_line_kills_the_step_when_a_rank_stops(script):
    """A rank that stops (failed staging, error, crash) must end the step: without
    --kill-on-bad-exit=1 its peers wait for it in a collective or a marker until the time limit."""
    for line in srun_lines(script):
        assert "--kill-on-bad-exit=1" in line.split(), f"slurm/{script}: srun without --kill-on-bad-exit=1: {line}"
    assert srun_lines("common.sh")  # the launch lines are found at all


@pytest.mark.parametrize("argv", [["slurm/train_resnet18.sh"], ["slurm/sr_train.sh", "--data", "D", "--out", "m.pt"],
                                  ["slurm/convert_bigearthnet.sh", "--source", "A", "--out", "D"],
                                  ["slurm/report.sh", "runs/*"]])
@pytest.mark.parametrize("container", [False, True])
def test_every_launched_srun_kills_the_step_when_a_rank_stops(tmp_path, argv, container):
    image = tmp_path / "img.sif"
    image.write_bytes(b"x")
    proc, calls = run_script(tmp_path, argv, **({"JEOPARDA_CONTAINER": str(image)} if container else {}))
    assert proc.returncode == 0, proc.stderr
    sruns = [c for c in calls if c[0] == "srun"]
    assert sruns
    for call in sruns:
        command = call.index("apptainer" if container else "jeoparda")
        assert "--kill-on-bad-exit=1" in call[1:command], call


def test_mpi_plugin_follows_the_resolved_configuration(tmp_path):
    """The train scripts ask `jeoparda config get dist.backend` (no YAML read by the shell): a config
    file, --set=KEY=VALUE and a later --set all count, inside the image too; an invalid one gives none."""
    horovod = tmp_path / "hvd.yaml"
    horovod.write_text("dist:\n  backend: horovod   # Horovod\n")
    image = tmp_path / "img.sif"
    image.write_bytes(b"x")
    for argv, extra, plugin in [
        (["--config", str(horovod)], {}, "pmix"),
        (["--config", str(horovod), "--set", "dist.backend=ddp"], {}, "none"),
        (["--set=dist.backend=horovod"], {}, "pmix"),
        (["--set", "dist.backend=horovod"], {"JEOPARDA_CONTAINER": str(image)}, "pmix"),
        (["--set", "dist.nope=1"], {}, "none"),
    ]:
        proc, calls = run_script(tmp_path, ["slurm/train_resnet18.sh", *argv], **extra)
        assert proc.returncode == 0, proc.stderr
        assert calls[0][1] == f"--mpi={plugin}", argv
    assert "grep" not in (REPO / "slurm" / "common.sh").read_text()
