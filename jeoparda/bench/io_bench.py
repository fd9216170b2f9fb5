"""``jeoparda bench io``: the storage under training's access pattern, with no model.

Every rank opens its split as training does (the same manifest checks, checksums spread over the
ranks, the same partition, shuffle blocks, batch and reader processes: jeoparda.bench.io_readers)
and reads its share, pass after pass (pass k reads epoch k's shuffle). With ``cold`` every rank
first drops the pages of the files it will read (jeoparda.bench.page_cache) and checks they went;
the cold pass is followed by a warm one over the same epoch, so both figures come from one run.
Where the file system keeps the pages, the run warns once and goes on with warm passes only. With
``stage_dir`` the same passes run again on the shards staged to node-local storage, after timing
the staging. Rank 0 writes RUN_DIR/results.jsonl in the training schema (job ``io``, one epoch
record per pass: docs/results-log.md), which ``jeoparda report`` shows in its I/O section.
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from jeoparda.bench.io_figures import memory_note, need_verdict, pass_figures, pass_line, summarise, warm_kind
from jeoparda.bench.io_readers import RankReaders
from jeoparda.bench.page_cache import drop, resident
from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.cluster.session import agree, root_decides
from jeoparda.cluster.system import identify
from jeoparda.config import RunConfig, to_dict
from jeoparda.errors import JeopardaError, one_line, os_error_line
from jeoparda.loaders.base import Planner, SplitSource, open_split
from jeoparda.loaders.build import run_task
from jeoparda.tasks import Task
from jeoparda.training.records import Epoch, RunEnd, RunStart
from jeoparda.training.results import ResultsLog, git_sha, versions
from jeoparda.training.setup import per_worker_batch

T = TypeVar("T")
Say = Callable[[str], None]


@dataclass(frozen=True)
class IoOptions:
    split: str = "train"
    passes: int = 2
    cold: bool = False
    stage_dir: str | None = None           # stage to this node-local folder ("": data.stage_dir) and compare
    need_images_per_s: float | None = None  # what training needs, all ranks together
    need_source: str = ""                   # where that figure comes from


def together(comm: Backend, work: Callable[[], T]) -> T:
    """``work`` on every rank; where it fails on any, every rank stops with the first failure."""
    result: Any = None
    problem = None
    try:
        result = work()
    except JeopardaError as exc:
        problem = str(exc) or "failed"
    except OSError as exc:
        problem = os_error_line(exc, "bench io")
    except Exception as exc:  # an unexpected failure still stops every rank, with its cause
        problem = f"rank {comm.rank}: bench io: {type(exc).__name__}: {one_line(exc)}"
    try:
        agree(comm, problem)
    except JeopardaError:
        if hasattr(result, "close"):  # what this rank started must not outlive the refusal
            result.close()
        raise
    return result


class IoRun:
    """One rank's bench io: its backend, log and passes (rank 0 writes and prints)."""

    def __init__(self, cfg: RunConfig, opts: IoOptions, env: ClusterEnv, backend: Backend, run_dir: Path,
                 say: Say) -> None:
        self.cfg, self.opts, self.env, self.comm, self.say = cfg, opts, env, backend, say
        self.run_dir = run_dir
        self.log = ResultsLog(run_dir, enabled=env.is_root)
        self.passes: list[dict[str, Any]] = []
        self.drop_checked: bool | None = None  # whether every drop's effect could be read
        self.batch, note = per_worker_batch(cfg, env.world_size)  # as training resolves it
        if note and env.is_root:
            say(note)

    def _root_say(self, text: str) -> None:
        if self.env.is_root:
            self.say(text)

    def open(self, cfg: RunConfig, task: Task) -> tuple[SplitSource, RankReaders, float]:
        """The split as training opens it, and this rank's readers started; seconds (slowest rank)."""
        start = time.perf_counter()
        source = together(self.comm, lambda: open_split(cfg, self.env, self.opts.split, task))
        planner = Planner(source.sizes, source.place, self.batch, cfg.train.seed, cfg.data.block_size,
                          train=self.opts.split == "train")
        readers = together(self.comm, lambda: RankReaders(source.reader(), planner, cfg.data.workers, self.env.rank))
        return source, readers, max(self.comm.gather_objects(time.perf_counter() - start))

    def _node_files(self, readers: RankReaders, epoch: int) -> list[Path]:
        """The files this node's ranks read in ``epoch`` (their union), for its local rank 0."""
        mine = (self.env.hostname, readers.shard_ids(epoch))
        ids = sorted({i for host, shards in self.comm.gather_objects(mine) if host == self.env.hostname
                      for i in shards})
        return [readers.reader.files[i] for i in ids] if self.env.local_rank == 0 else []

    def _drop(self, files: list[Path], root: Path) -> str:
        """Drop the node's pages (local rank 0 of each node); ``cold``, ``cold (unchecked)`` where
        the cache cannot be read, or "" where the file system keeps its pages (warned once)."""
        result = together(self.comm, partial(drop, files))
        took = self.comm.gather_objects(result.took_effect if files else True)
        if False in took:
            why = [w for w in self.comm.gather_objects(result.refused or (
                f"{100 * (result.after.fraction or 0):.0f} % still cached" if files else "")) if w]
            if self.env.is_root:
                warnings.warn(f"{root}: the file system keeps the shards' pages after POSIX_FADV_DONTNEED "
                              f"({why[0] if why else 'kept'}; tmpfs, or a file system that ignores the hint): "
                              "cold passes cannot be measured there; reporting warm passes only", stacklevel=2)
            return ""
        checked = None not in took
        if not checked and self.drop_checked is None and self.env.is_root:
            warnings.warn(f"{root}: the page cache cannot be read here: the drop is made but not checked",
                          stacklevel=2)
        self.drop_checked = checked if self.drop_checked is None else self.drop_checked and checked
        return "cold" if checked else "cold (unchecked)"

    def _reread_kind(self, rows: list[dict[str, Any]]) -> str:
        """The pass right after a cold one reads the same patches: warm where what each node read
        fits in half its memory, else (the cache cannot hold it) a plain re-read."""
        per_node: dict[str, int] = {}
        for r in rows:
            per_node[r["host"]] = per_node.get(r["host"], 0) + r["bytes"]
        return "warm" if max(per_node.values()) <= _memory_bytes() // 2 else "re-read"

    def run_passes(self, readers: RankReaders, where: str, root: Path) -> None:
        """``opts.passes`` passes over this source: cold then warm, or the cache as found."""
        cold = self.opts.cold
        for epoch in range(self.opts.passes):
            files = self._node_files(readers, epoch)
            kinds = [""]
            if cold:
                kind = self._drop(files, root)
                cold = bool(kind)
                kinds = [kind, "again"] if cold else kinds
            for kind in kinds:
                # collective on every rank (together agrees), measured by each node's local rank 0
                cached = together(self.comm, partial(_cached_fraction, files))
                self.comm.barrier()  # every rank starts the pass together
                timing = together(self.comm, partial(readers.read_pass, epoch))
                rows = self.comm.gather_objects({
                    "rank": self.env.rank, "host": self.env.hostname, "seconds": timing.seconds,
                    "images": timing.images, "bytes": timing.bytes, "first_batch_s": timing.first_batch_s,
                    "cached_before": cached, "indices_sha256": readers.digest(epoch)})
                if kind == "again":
                    kind = self._reread_kind(rows)
                elif not kind:  # the cache as found: say what it held (each node's local rank 0 measured)
                    kind = warm_kind([r["cached_before"] for r in rows if r["cached_before"] is not None])
                figures = pass_figures(rows, epoch + 1, kind, where)
                self.passes.append(figures)
                self.log.write(Epoch(epoch=len(self.passes), epoch_time_s=figures["seconds"],
                                     train_images=figures["images"], images_per_s=figures["images_per_s"],
                                     metrics={f"io_{k}": v for k, v in figures.items()}))
                self._root_say(pass_line(figures))

    def start_record(self, source: SplitSource, task: Task, startup_s: float) -> None:
        hosts = sorted(set(self.comm.gather_objects(self.env.hostname)))
        system = root_decides(self.comm, partial(identify, self.cfg.system.name, self.env, None, 0, len(hosts),
                                                 self.cfg.data.path))
        batch = self.batch
        self.log.write(RunStart(
            job="io", run_id=self.run_dir.name, system=system[0], system_info=system[1], model=self.cfg.model,
            task=task.name, dataset=source.dataset, bands=source.bands.names, classes=source.classes,
            backend=self.comm.name, data_backend="torch", world_size=self.env.world_size, nodes=len(hosts),
            gpus_per_node=0, device="cpu", batch_size_per_worker=batch, global_batch_size=batch * self.env.world_size,
            mode="none", config=to_dict(self.cfg), versions=versions(), git_sha=git_sha(), hosts=hosts,
            stage_time_s=None, extra={"io_split": self.opts.split, "io_cold": self.opts.cold,
                                      "io_readers_per_rank": self.cfg.data.workers, "io_startup_s": startup_s}))


def _cached_fraction(files: list[Path]) -> float | None:
    """Share of ``files`` in the page cache; None for none (ranks other than a node's first)."""
    return resident(files).fraction if files else None


def _split_bytes(source: SplitSource) -> int:
    return sum(os.stat(source.root / s["file"]).st_size for s in source.shards)


def _memory_bytes() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _io_config(cfg: RunConfig) -> RunConfig:
    """The configuration the direct passes read with: never staged (``--stage`` stages apart), and
    ranks may share a GPU (bench io binds none of its own; a storage test may want more client
    ranks than a node has GPUs)."""
    return replace(cfg, data=replace(cfg.data, stage=False), dist=replace(cfg.dist, share_gpus=True))


def bench_io(cfg: RunConfig, opts: IoOptions, out: Path | None, say: Say = print) -> dict[str, Any]:
    """Run the passes on this rank; returns the summary (every rank)."""
    from jeoparda.training.launch import session

    cfg = _io_config(cfg)
    with session(cfg, out, resume=False, name="io") as (env, backend, _, run_dir, _):
        task = together(backend, lambda: run_task(cfg))
        run = IoRun(cfg, opts, env, backend, run_dir, say)
        if cfg.data.backend != "torch" and env.is_root:
            warnings.warn(f"data.backend={cfg.data.backend}: bench io reads as the torch backend does (its shard "
                          "reader and reader processes), not as that backend would", stacklevel=2)
        started = time.perf_counter()
        source, readers, startup_s = run.open(cfg, task)
        backend.set_timeout(cfg.dist.timeout_s)  # set-up (checksums) is over: a rank that hangs now ends the job
        root = Path(cfg.data.path)
        split_bytes = root_decides(backend, partial(_split_bytes, source))
        try:
            n_shards, ranks = len(source.shards), env.world_size
            if n_shards < ranks and env.is_root:
                warnings.warn(f"{root}: the {opts.split} split has {n_shards} shard(s) for {ranks} ranks: "
                              "ranks read the same files, as training would, and --cold drops pages another "
                              "rank may share; convert with a smaller --shard-size for a shard per rank",
                              stacklevel=2)
            run.start_record(source, task, startup_s)
            run._root_say(f"bench io: {root}, {opts.split} split ({sum(source.sizes):,} patches, "
                          f"{split_bytes / 1e9:.2f} GB in {n_shards} shards), {ranks} rank(s), "
                          f"{cfg.data.workers} reader(s) each, batch {run.batch}; start-up "
                          f"{startup_s:.2f} s (manifest, checksums "
                          f"{'verified' if cfg.data.verify_checksums else 'off'}, readers)")
            run.run_passes(readers, "direct", root)
        finally:
            readers.close()
        staging: dict[str, Any] | None = None
        if opts.stage_dir is not None:
            staged_cfg = replace(cfg, data=replace(cfg.data, stage=True,
                                                            stage_dir=opts.stage_dir or cfg.data.stage_dir))
            staged, staged_readers, staged_s = run.open(staged_cfg, task)
            try:
                node_bytes = max(backend.gather_objects(sum(
                    os.stat(staged.root / staged.shards[i]["file"]).st_size
                    for i in staged.place.groups[staged.place.group])))
                stage_s = max(backend.gather_objects(staged.stage_time_s))
                staging = {"seconds": stage_s, "bytes_per_node": node_bytes, "folder": str(staged.root),
                           "gb_per_s_per_node": node_bytes / 1e9 / max(stage_s, 1e-9), "open_s": staged_s}
                run._root_say(f"staging to {staged.root}: {stage_s:.2f} s, {node_bytes / 1e9:.2f} GB per node, "
                              f"{staging['gb_per_s_per_node']:.3f} GB/s per node (copy and SHA-256 of each shard; "
                              "a copy already there is only checked)")
                run.run_passes(staged_readers, "staged", staged.root)
            finally:
                staged_readers.close()
        nodes = len({r["host"] for r in run.passes[0]["ranks"]}) if run.passes else 1
        summary: dict[str, Any] = {
            "data": str(root), "split": opts.split, "world_size": env.world_size, "nodes": nodes,
            "readers_per_rank": cfg.data.workers, "batch_size": run.batch, "startup_s": startup_s,
            "cold_requested": opts.cold, "cold_measured": any(p["kind"].startswith("cold") for p in run.passes),
            "drop_checked": run.drop_checked, "dataset_bytes": split_bytes,
            "memory_bytes": sum(dict(backend.gather_objects((env.hostname, _memory_bytes()))).values()),
            "staging": staging, "passes": run.passes, "figures": summarise(run.passes), "run_dir": str(run_dir)}
        summary["memory_note"] = memory_note(split_bytes, summary["memory_bytes"], nodes,
                                             summary["cold_measured"], opts.cold)
        if opts.need_images_per_s is not None:
            summary["need"] = need_verdict(summary["figures"], opts.need_images_per_s, f"{opts.need_source}; "
                                           f"measured with {env.world_size} rank(s) of batch {run.batch}")
        run.log.write(RunEnd(total_time_s=time.perf_counter() - started, epochs=len(run.passes), status="completed",
                             bench={k: v for k, v in summary.items() if k != "passes"}))
        return summary
