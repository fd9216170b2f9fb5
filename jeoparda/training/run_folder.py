"""The run folder of ``jeoparda train``: it belongs to one run (docs/training.md, "Run folder").

A folder holding another run's files is refused unless resuming; nothing in it is written over:
the first attempt's configuration is ``config.yaml``, each resumption's ``config-resume-N.yaml``
(so a ``--config RUN_DIR/config.yaml`` stays as it was); no link inside it is followed.
"""
from __future__ import annotations

import os
from pathlib import Path

from jeoparda.cluster.session import prepare_run_dir
from jeoparda.config import RunConfig, config_text
from jeoparda.safe_files import open_write
from jeoparda.training.results import RESULTS_NAME

CONFIG_NAME = "config.yaml"
#: Files and folders besides the results log that mark a folder as a run's.
OWNED = ("mllog.txt", CONFIG_NAME, "checkpoints")
ADVICE = "use --resume to continue it or another --out"


def prepare_train_dir(run_dir: Path, cfg: RunConfig, resume: bool, restart: bool = False) -> None:
    """Create or check the run folder (:func:`jeoparda.cluster.session.prepare_run_dir`); a fresh
    start writes ``config.yaml`` (a resumption writes its own once its checkpoint is accepted:
    :func:`write_run_config`)."""
    prepare_run_dir(run_dir, RESULTS_NAME, ADVICE, resume, restart, owned=OWNED)
    if not resume:
        write_run_config(run_dir, cfg, resume=False)


def config_name(run_dir: Path, resume: bool) -> str:
    """``config.yaml`` for the first attempt, else the next free ``config-resume-N.yaml``."""
    if not resume:
        return CONFIG_NAME
    n = 1
    while os.path.lexists(Path(run_dir) / f"config-resume-{n}.yaml"):
        n += 1
    return f"config-resume-{n}.yaml"


def write_run_config(run_dir: Path, cfg: RunConfig, resume: bool) -> Path:
    """Write the resolved configuration (it loads again as ``--config``) under a new name; an
    existing file or a link there is never written through."""
    path = Path(run_dir) / config_name(run_dir, resume)
    with os.fdopen(open_write(path, exclusive=True), "w", encoding="utf-8") as handle:
        handle.write(config_text(cfg))
    return path
