"""Typed run configuration: frozen dataclasses, YAML layers and ``--set key=value`` overrides.

``load_config(files, overrides)`` starts from the defaults below, merges each YAML file in order,
then the overrides (values parsed as YAML scalars), and builds the dataclasses: unknown keys and
values of the wrong type are errors that name the key and where it came from.
"""
from __future__ import annotations

import difflib
import math
import re
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from jeoparda.backend_tables import DATA_BACKENDS, DIST_BACKENDS
from jeoparda.errors import JeopardaError

OPTIMIZERS = ("adam", "adamw", "sgd", "lars", "lamb")
SCHEDULES = ("step", "cosine", "constant", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise JeopardaError(f"configuration: {key}: {message}")


def _finite(section: Any, prefix: str) -> None:
    """Every float field of ``section`` a finite number (``nan``, ``.inf`` refused, naming the key)."""
    for f in fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float):
            _check(math.isfinite(value), f"{prefix}.{f.name}", f"must be a finite number, got {value}")


# torch.compile's modes; reduce-overhead captures CUDA graphs (one launch per step, not per kernel)
COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class AugmentConfig:
    """Train-split augmentation; evaluation splits are never augmented."""

    flip: bool = True          # random horizontal and vertical flips
    rot90: bool = True         # random rotation by 0, 90, 180 or 270 degrees
    mixup_alpha: float = 0.0   # > 0: mixup with weight ~ Beta(alpha, alpha); 0 disables
    preset: str = ""           # "heavy": crop_scale 0.5 and jitter 0.2 unless those are set
    crop_scale: float = 1.0    # < 1: random resized crops of this much area (or more), back to full size
    jitter: float = 0.0        # > 0: per-band brightness and contrast jitter of this strength

    def __post_init__(self) -> None:
        _finite(self, "data.augment")
        _check(self.mixup_alpha >= 0, "data.augment.mixup_alpha", f"must be >= 0, got {self.mixup_alpha}")
        _check(self.preset in ("", "heavy"), "data.augment.preset", f"{self.preset!r} is not heavy (or empty)")
        _check(0 < self.crop_scale <= 1, "data.augment.crop_scale", "must be within 0..1 (0 excluded)")
        _check(0 <= self.jitter < 1, "data.augment.jitter", "must be within 0..1 (1 excluded)")

    @property
    def crop(self) -> float:
        """The smallest crop area fraction in effect (1: no crops)."""
        return 0.5 if self.preset == "heavy" and self.crop_scale == 1.0 else self.crop_scale

    @property
    def strength(self) -> float:
        """The brightness/contrast jitter in effect (0: none)."""
        return 0.2 if self.preset == "heavy" and self.jitter == 0.0 else self.jitter


@dataclass(frozen=True)
class DataConfig:
    path: str = ""                 # a folder written by `jeoparda convert`
    backend: str = "torch"         # a name in jeoparda.backend_tables.DATA_BACKENDS: torch | dali | synthetic
    workers: int = 2               # background reader processes (torch) or CPU threads (dali)
    prefetch: int = 2              # batches queued per reader process
    block_size: int = 16           # shuffle granularity: patches read together from one shard
    verify_checksums: bool = True  # every shard hashed once per job (split over the ranks)
    stage: bool = False            # copy this node's shards to node-local storage first
    stage_dir: str = ""            # node-local folder; empty: the temporary directory ($TMPDIR)
    synthetic_patches: int = 0     # synthetic backend without a data path: patches per epoch
    resize: int = 0                # > 0: resize images to resize x resize on the device (bilinear)
    bands: str = ""                # channels to deliver: "" = the data set's optical bands; "s2+s1"
    #                                adds VV, VH; or a comma list, e.g. "B02,B03,B04,B08,VV,VH"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _finite(self, "data")
        _check(self.backend in DATA_BACKENDS, "data.backend",
               f"{self.backend!r} is not one of {', '.join(DATA_BACKENDS)}")
        _check(self.workers >= 0, "data.workers", f"must be >= 0, got {self.workers}")
        _check(self.prefetch >= 1, "data.prefetch", f"must be >= 1, got {self.prefetch}")
        _check(self.block_size >= 1, "data.block_size", f"must be >= 1, got {self.block_size}")
        _check(self.synthetic_patches >= 0, "data.synthetic_patches", "must be >= 0")
        _check(self.resize >= 0, "data.resize", f"must be >= 0, got {self.resize}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    batch_size: int = 32             # per worker
    global_batch_size: int = 0       # > 0: per-worker batch = global / world size (paper recipes)
    seed: int = 0
    optimizer: str = "adam"          # adam | adamw | sgd | lars | lamb
    lr: float = 1e-3                 # for lr_base_batch images when lr_scaling is linear
    lr_scaling: str = "none"         # none | linear: lr x global batch / lr_base_batch
    lr_base_batch: int = 256
    weight_decay: float = 1e-4
    momentum: float = 0.9            # sgd and lars
    schedule: str = "step"           # step | cosine | constant (after warm-up) | onecycle
    step_epochs: int = 30            # step schedule: every step_epochs epochs ...
    step_gamma: float = 0.5          # ... multiply the learning rate by step_gamma
    warmup_epochs: float = 0.0       # linear warm-up from lr/10 over these epochs
    precision: str = "fp32"          # fp32 | bf16 | fp16 | auto: bf16 from compute capability 8.0, else fp16
    compile: str = ""                # "": eager; a torch.compile backend (inductor, aot_eager, ...)
    compile_mode: str = ""           # "": the backend's default; reduce-overhead (CUDA graphs), max-autotune, ...
    channels_last: bool = True       # on GPU
    deterministic: bool = False      # CPU: deterministic algorithms, one thread per rank
    threads: int = 0                 # CPU threads per rank; 0: the node's cores / its ranks
    task: str = ""                   # multilabel | singlelabel | segmentation (jeoparda.tasks.TASKS); "": the
    #                                  data set's first (manifest "tasks"; segmentation for a dense model)
    threshold: float = 0.5           # multi-label: probability above which a class is predicted
    label_smoothing: float = 0.0     # single-label: cross-entropy label smoothing
    target: float = 0.0              # > 0: the validation quality (the task's metric) to time the run to
    val_every: int = 1               # validate every N epochs (0: never; test still runs)
    test: bool = True                # evaluate the test split at the end
    checkpoint_every: int = 1        # epochs; 0 disables checkpoints
    keep_checkpoints: int = 2
    max_steps: int = 0               # > 0: stop each epoch after this many steps (smoke tests)
    preempt_check_every: int = 10    # steps between checks whether any rank got a preemption signal

    def __post_init__(self) -> None:
        _finite(self, "train")
        for key in ("seed", "val_every", "checkpoint_every", "max_steps"):
            _check(getattr(self, key) >= 0, f"train.{key}", f"must be >= 0, got {getattr(self, key)}")
        _check(self.epochs >= 1, "train.epochs", f"must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, "train.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.global_batch_size >= 0, "train.global_batch_size", "must be >= 0")
        _check(self.optimizer in OPTIMIZERS, "train.optimizer",
               f"{self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        _check(self.lr_scaling in ("none", "linear"), "train.lr_scaling", "must be none or linear")
        _check(self.schedule in SCHEDULES, "train.schedule", f"{self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        _check(self.precision in PRECISIONS, "train.precision",
               f"{self.precision!r} is not one of {', '.join(PRECISIONS)}")
        _check(self.lr > 0, "train.lr", f"must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, "train.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(0 <= self.momentum < 1, "train.momentum", f"must be within 0..1 (1 excluded), got {self.momentum}")
        _check(self.step_gamma > 0, "train.step_gamma", f"must be > 0, got {self.step_gamma}")
        _check(self.warmup_epochs >= 0, "train.warmup_epochs", f"must be >= 0, got {self.warmup_epochs}")
        _check(self.step_epochs >= 1, "train.step_epochs", f"must be >= 1, got {self.step_epochs}")
        _check(self.lr_base_batch >= 1, "train.lr_base_batch", f"must be >= 1, got {self.lr_base_batch}")
        _check(0 <= self.threshold <= 1, "train.threshold", "must be within 0..1")
        _check(0 <= self.label_smoothing < 1, "train.label_smoothing", "must be within 0..1 (excluded)")
        _check(0 <= self.target <= 1, "train.target", "must be within 0..1 (0: no target)")
        _check(self.compile_mode in COMPILE_MODES, "train.compile_mode",
               f"{self.compile_mode!r} is not one of {', '.join(repr(m) for m in COMPILE_MODES)}")
        _check(not self.compile_mode or bool(self.compile), "train.compile_mode",
               "needs train.compile (the backend, e.g. inductor)")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints", "must be >= 1")
        _check(self.threads >= 0, "train.threads", f"must be >= 0, got {self.threads}")
        _check(self.preempt_check_every >= 1, "train.preempt_check_every", "must be >= 1")


@dataclass(frozen=True)
class DistConfig:
    backend: str = "ddp"             # a name in jeoparda.backend_tables.DIST_BACKENDS: ddp | horovod | single
    port: int = 0                    # rendezvous port; 0: derived from the job id
    timeout_s: float = 300.0         # a collective during training that waits longer ends the job
    setup_timeout_s: float = 3600.0  # the same during set-up (staging, checksums, compile, first step)
    share_gpus: bool = False         # let ranks share a GPU (tests on a one-GPU machine); collectives over gloo

    def __post_init__(self) -> None:
        _finite(self, "dist")
        _check(self.backend in DIST_BACKENDS, "dist.backend",
               f"{self.backend!r} is not one of {', '.join(DIST_BACKENDS)}")
        _check(0 <= self.port < 65536, "dist.port", f"must be a port number, got {self.port}")
        _check(self.timeout_s > 0, "dist.timeout_s", "must be > 0")
        _check(self.setup_timeout_s > 0, "dist.setup_timeout_s", "must be > 0")
        _check(not (self.share_gpus and self.backend == "horovod"), "dist.share_gpus",
               "Horovod reduces GPU tensors over NCCL, which refuses two ranks on one GPU; use dist.backend=ddp")


@dataclass(frozen=True)
class MLPerfConfig:
    """The submission_* keys of mllog.txt (MLPerf's logging format)."""

    org: str = "jeoparda"            # submitting organisation
    platform: str = ""               # system name; "": the device's name
    division: str = "open"           # closed | open (jeoparda's workloads are not MLPerf's: open)
    status: str = "research"         # cloud | onprem | preview | research

    def __post_init__(self) -> None:
        _check(self.division in ("closed", "open"), "mlperf.division", "must be closed or open")
        _check(self.status in ("cloud", "onprem", "preview", "research"), "mlperf.status",
               "must be cloud, onprem, preview or research")
        _check(bool(self.org.strip()), "mlperf.org", "must not be empty")


#: A system name as it may appear in file names (run folders, reports, ReFrame references).
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
NAME_RULE = "letters, digits, '.', '_' and '-', not starting with '.' or '-', at most 64 characters"


def name_problem(name: str) -> str | None:
    """Why ``name`` is not safe in a file name (the characters at fault), or None when it is."""
    if SAFE_NAME.fullmatch(name):
        return None
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
    if bad:
        return f"{name!r} has characters unsafe in a file name: {' '.join(repr(c) for c in bad)} (use {NAME_RULE})"
    if not name:
        return "is empty"
    if len(name) > 64:
        return f"{name[:20]!r}... is {len(name)} characters long (at most 64)"
    return f"{name!r} starts with {name[0]!r} (use {NAME_RULE})"


@dataclass(frozen=True)
class SystemConfig:
    """The machine a run measures; results of different systems are never mixed in a report."""

    name: str = ""  # "": JEOPARDA_SYSTEM, else SLURM_CLUSTER_NAME, else the host name without its digits

    def __post_init__(self) -> None:
        problem = name_problem(self.name) if self.name else None
        _check(problem is None, "system.name", problem or "")


@dataclass(frozen=True)
class RunConfig:
    model: str = "resnet18"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    mlperf: MLPerfConfig = field(default_factory=MLPerfConfig)
    system: SystemConfig = field(default_factory=SystemConfig)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return asdict(cfg)


def _merge(base: dict, layer: dict, where: str, prefix: str = "") -> None:
    for key, value in layer.items():
        name = f"{prefix}{key}"
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise JeopardaError(f"{where}: unknown key {name!r}{hint}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise JeopardaError(f"{where}: {name} is a section; give its keys, e.g. {name}.KEY")
            _merge(base[key], value, where, f"{name}.")
        else:
            base[key] = value


def _coerce(value: Any, kind: Any, name: str, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    raise JeopardaError(f"{where}: {name} must be {words.get(kind, kind)}, got {value!r}")


def _build(cls: Any, values: dict[str, Any], where: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        kind, value = hints[f.name], values[f.name]
        name = f"{prefix}{f.name}"
        kwargs[f.name] = (_build(kind, value, where, f"{name}.") if is_dataclass(kind)
                          else _coerce(value, kind, name, where))
    return cls(**kwargs)


def parse_override(text: str) -> dict[str, Any]:
    """``a.b=c`` -> {"a": {"b": c}} with c parsed as a YAML scalar (1, 0.5, true, text)."""
    if "=" not in text:
        raise JeopardaError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(files: Sequence[Path] = (), overrides: Sequence[str] = ()) -> RunConfig:
    """Defaults, then each YAML file in order, then ``--set`` overrides."""
    merged = to_dict(RunConfig())
    sources = []
    for path in files:
        try:
            layer = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise JeopardaError(f"{path}: cannot read configuration ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise JeopardaError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(layer, dict):
            raise JeopardaError(f"{path}: configuration must be a mapping of keys to values")
        _merge(merged, layer, str(path))
        sources.append(str(path))
    for text in overrides:
        _merge(merged, parse_override(text), f"--set {text}")
    return _build(RunConfig, merged, " + ".join(sources + ["--set"]) if overrides else
                  (" + ".join(sources) or "defaults"))


def config_text(cfg: RunConfig) -> str:
    """The resolved configuration as YAML (loadable again with load_config)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
