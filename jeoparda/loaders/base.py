"""What every loader backend shares: the split's shards and statistics, who reads what, the
epoch plan, checksums, and mixup. Backends only turn plans into batches.

Every backend yields ``{"image": float32 B x C x H x W (the channels ``data.bands`` chose, normalised
with the manifest's band statistics), "label": the task's targets, "mask": bool B}`` on the target
device; C, H, W and K come from the data set (12 x 120 x 120 and 19 for BigEarthNet). ``label`` is
float32 B x K class vectors, or for a dense task uint8 B x H x W reference maps (each task's class
says). ``mask`` is False only for the padding of the last evaluation batches (see
jeoparda.loaders.partition); mixup adds ``mix_weight``. The task is decided before the loaders are
built (:func:`jeoparda.tasks.decide_task`) and handed to them.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig
from jeoparda.errors import JeopardaError
from jeoparda.loaders.augment import device_augment, mixup, normaliser
from jeoparda.loaders.bands import BandChoice, choose_bands
from jeoparda.loaders.partition import EpochPlan, Placement, eval_plan, placement, train_plan
from jeoparda.loaders.split_reader import SplitReader
from jeoparda.shards.format import Layout, layout_of_manifest, verify_shard
from jeoparda.shards.manifest import read_manifest
from jeoparda.tasks import Task

Batch = dict[str, torch.Tensor]


@dataclass
class SplitSource:
    """A split ready to read: where its shards are, who reads which, which channels, how to
    normalise them (optical and Sentinel-1 each with their own statistics)."""

    root: Path
    split: str
    shards: list[dict[str, Any]]
    place: Placement
    layout: Layout
    bands: BandChoice
    mean: np.ndarray
    inv_std: np.ndarray
    s1_mean: np.ndarray
    s1_inv_std: np.ndarray
    classes: list[str]
    task: Task
    dataset: str = ""
    stage_time_s: float = 0.0

    @property
    def sizes(self) -> list[int]:
        return [int(s["patches"]) for s in self.shards]

    @property
    def channels(self) -> int:
        return len(self.bands.names)

    def reader(self) -> SplitReader:
        return SplitReader(self.root, self.shards, self.layout, self.bands.optical, self.bands.s1,
                           masks=self.task.dense)


def normalisers(manifest: dict[str, Any], bands: BandChoice, where: Path) -> tuple[np.ndarray, ...]:
    """Mean and 1/std of the chosen optical bands, then of the chosen Sentinel-1 bands."""
    stats = manifest["band_stats"]
    if not stats.get("mean") or not stats.get("std"):
        raise JeopardaError(f"{where}: no band statistics (empty train split?)")
    n = len(manifest["bands"])
    optical = bands.optical if bands.optical is not None else list(range(n))
    mean, inv = normaliser([stats["mean"][i] for i in optical], [stats["std"][i] for i in optical])
    s1_mean, s1_inv = normaliser([stats["mean"][n + i] for i in bands.s1], [stats["std"][n + i] for i in bands.s1])
    return mean, inv, s1_mean, s1_inv


def open_split(cfg: RunConfig, env: ClusterEnv, split: str, task: Task) -> SplitSource:
    """Read the manifest, place shards and ranks, stage if asked, and check the shards; the
    readers deliver the targets of ``task``."""
    if not cfg.data.path:
        raise JeopardaError("configuration: data.path is empty; set it to a converted data set")
    root = Path(cfg.data.path)
    manifest = read_manifest(root)
    where = root / "manifest.json"
    if split not in manifest["splits"]:
        raise JeopardaError(f"{where}: no split {split!r} (has {', '.join(manifest['splits'])})")
    layout = layout_of_manifest(manifest)
    bands = choose_bands(cfg.data.bands, manifest["bands"], layout.s1, str(root))
    mean, inv, s1_mean, s1_inv = normalisers(manifest, bands, where)
    shards = manifest["splits"][split]["shards"]
    place = placement(len(shards), env, node_local=cfg.data.stage)
    mine = list(place.groups[place.group])
    stage_time = 0.0
    if cfg.data.stage:
        from jeoparda.loaders.staging import stage_shards

        start = time.perf_counter()
        root = stage_shards(root, manifest, [shards[i] for i in mine], cfg.data.stage_dir, env)
        stage_time = time.perf_counter() - start
    elif cfg.data.verify_checksums:  # each shard hashed by one rank: the job reads it once
        for i in range(env.rank, len(shards), env.world_size):
            verify_shard(root / shards[i]["file"], shards[i]["sha256"], shards[i]["patches"], layout)
    source = SplitSource(root, split, shards, place, layout, bands, mean, inv, s1_mean, s1_inv,
                         list(manifest["classes"]), task, manifest["dataset"], stage_time)
    source.reader().check_formats(mine)
    return source


@dataclass
class Planner:
    """Everything that decides a rank's epoch plan; picklable, so reader processes derive the
    plan of any epoch themselves instead of being sent index lists."""

    sizes: list[int]
    place: Placement
    batch: int
    seed: int
    block: int
    train: bool

    def __post_init__(self) -> None:
        self._cached: tuple[int, EpochPlan] | None = None

    def plan(self, epoch: int) -> EpochPlan:
        if self._cached is None or self._cached[0] != epoch:
            plan = (train_plan(self.sizes, self.place, self.batch, self.seed, epoch, self.block)
                    if self.train else eval_plan(self.sizes, self.place, self.batch))
            self._cached = (epoch, plan)
        return self._cached[1]


class Loader:
    """Base of the backends: epochs, steps and mixup; subclasses implement ``_batches``."""

    def __init__(self, cfg: RunConfig, env: ClusterEnv, split: str, source: SplitSource | None,
                 accel: Accelerator, task: Task) -> None:
        self.cfg, self.env, self.split, self.source, self.accel = cfg, env, split, source, accel
        self.target_task = task  # the run's task: whose targets the batches carry
        self.device = accel.device  # where the batches' tensors live
        self.batch_size = cfg.train.batch_size
        self.train = split == "train"
        self.epoch = 0
        self.start_step = 0
        self.planner = None if source is None else Planner(
            source.sizes, source.place, self.batch_size, cfg.train.seed, cfg.data.block_size, self.train)

    @property
    def src(self) -> SplitSource:
        """The split being read (every backend but synthetic-without-data has one)."""
        if self.source is None:
            raise JeopardaError(f"the {self.cfg.data.backend} loader needs data.path")
        return self.source

    @property
    def channels(self) -> int:
        """Channels of ``image`` (the model's in_chans)."""
        return self.src.channels

    @property
    def num_classes(self) -> int:
        """Width of ``label`` (the model's num_classes)."""
        return self.src.layout.classes

    @property
    def task(self) -> str:
        """The name of the task the targets are for."""
        return self.target_task.name

    @property
    def dataset(self) -> str:
        """The manifest's data set name (bigearthnet-v1, bigearthnet-v2, ...)."""
        return self.src.dataset

    @property
    def class_names(self) -> list[str]:
        """The data set's classes, index order."""
        return self.src.classes

    @property
    def band_names(self) -> list[str]:
        """The channels of ``image``, in order."""
        return self.src.bands.names

    @property
    def stage_time_s(self) -> float:
        return self.source.stage_time_s if self.source else 0.0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch whose shuffle the next iteration uses, and the step to start from
        (a run resumed mid-epoch continues with exactly the batches it had not seen)."""
        self.epoch = epoch
        self.start_step = start_step

    def plan(self) -> EpochPlan:
        if self.planner is None:
            raise JeopardaError(f"the {self.cfg.data.backend} loader needs data.path")
        return self.planner.plan(self.epoch)

    @property
    def steps_per_epoch(self) -> int:
        return self.plan().steps

    def __len__(self) -> int:
        return self.steps_per_epoch

    @property
    def augment(self) -> bool:
        return self.train and (self.cfg.data.augment.flip or self.cfg.data.augment.rot90)

    def __iter__(self) -> Iterator[Batch]:
        alpha = self.cfg.data.augment.mixup_alpha if self.train else 0.0
        size, aug = self.cfg.data.resize, self.cfg.data.augment
        for step, batch in enumerate(self._batches(), start=self.start_step):
            if size and tuple(batch["image"].shape[-2:]) != (size, size):
                # on the device, after the backend: torch, DALI and synthetic batches alike
                batch = {**batch, "image": torch.nn.functional.interpolate(
                    batch["image"], size=(size, size), mode="bilinear", align_corners=False)}
                if batch["label"].ndim == 3:  # reference maps: nearest, class indices stay classes
                    batch["label"] = torch.nn.functional.interpolate(
                        batch["label"][:, None].float(), size=(size, size), mode="nearest")[:, 0].to(torch.uint8)
            if self.train and (aug.crop < 1 or aug.strength > 0):
                batch = {**batch, "image": device_augment(batch["image"], aug, self.cfg.train.seed, self.epoch,
                                                          self.env.rank, step, self.accel.to_device)}
            if alpha > 0:
                batch = mixup(batch, alpha, self.cfg.train.seed, self.epoch, self.env.rank, step,
                              self.accel.to_device)
            yield batch

    def close(self) -> None:
        """Release background resources (reader processes); the loader is unusable after."""

    def _batches(self) -> Iterator[Batch]:
        """Batches of steps ``start_step`` .. ``steps_per_epoch - 1`` of the current epoch."""
        raise NotImplementedError
