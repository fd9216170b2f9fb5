"""``jeoparda convert``: an archive (any source kind) -> sharded 12-band HDF5 (docs/data-format.md).

Work is cut into chunks, one per shard. A chunk is converted into ``.<shard>.tmp-<pid>``, renamed when
complete, and then a small record (checksum, rejected patches, exact integer band sums) is written
to ``OUT/.jeoparda-convert/records/``. A rerun reuses every shard whose record and checksum agree,
so an interrupted run resumes. Chunks are spread over ``--workers`` processes and, under
``mpirun``/``srun``, over MPI ranks; rank 0 writes the manifest. The result does not depend on how
the work was spread: same shards, same bytes. Inside OUT no link is followed (docs/reliability.md):
a link at a split folder, the work folder, a shard or the manifest is refused with one line.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from jeoparda.cluster.env import ClusterEnv
from jeoparda.cluster.session import agree, mpi_world, root_decides
from jeoparda.cluster.slots import set_slot
from jeoparda.convert.assemble import Upsampler, shard_arrays
from jeoparda.convert.plan import Chunk, ConvertOptions, Plan, make_plan
from jeoparda.convert.records import ChunkStats, build_manifest, layout_for
from jeoparda.errors import JeopardaError, os_error_line
from jeoparda.lifeline import die_with
from jeoparda.safe_files import make_dirs, open_write, refuse_link, sweep_temps, temp_name
from jeoparda.shards.format import Layout, file_sha256
from jeoparda.shards.manifest import MANIFEST_NAME, write_json_atomic
from jeoparda.shards.writer import ShardWriter
from jeoparda.sources.base import PatchError, Source
from jeoparda.sources.splits import SPLITS

WORK_DIR = ".jeoparda-convert"
Tick = Callable[[int], None]


class StrictStop(Exception):
    """First damaged patch under --strict; the message names the file."""


def _records_dir(out: Path) -> Path:
    return out / WORK_DIR / "records"


def _same_input(path: Path, fingerprint: str) -> bool | None:
    """Whether the JSON at ``path`` carries ``fingerprint``; None if the file does not exist."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (OSError, ValueError, AttributeError):
        return False


def write_json(path: Path, data: Any) -> None:
    """JSON written atomically inside OUT: a link at ``path`` is refused, never followed or replaced."""
    refuse_link(path)
    write_json_atomic(path, data)


def _refuse_links(out: Path) -> None:
    """OUT may be a link (the user's choice); what jeoparda writes or deletes inside it may not."""
    for name in (MANIFEST_NAME, *SPLITS, WORK_DIR, f"{WORK_DIR}/records", f"{WORK_DIR}/plan.json"):
        refuse_link(out / name)


def prepare_out(opts: ConvertOptions, plan: Plan) -> str:
    """Check and set up OUT; returns 'fresh', 'resume' or 'complete'. Refuses foreign content and
    links inside OUT; removes the temporary files a dead conversion left."""
    out = Path(opts.out)
    if out.resolve().is_relative_to(plan.root.resolve()):
        raise JeopardaError(f"{out}: output folder lies inside the source archive {plan.root}")
    make_dirs(out)
    _refuse_links(out)
    plan_file = out / WORK_DIR / "plan.json"
    done = _same_input(out / MANIFEST_NAME, plan.fingerprint)
    started = _same_input(plan_file, plan.fingerprint)
    state = "fresh"
    if not opts.overwrite:
        if done is False:
            raise JeopardaError(f"{out}: already holds a different converted data set "
                                f"({MANIFEST_NAME}); use --overwrite to replace it")
        if done:
            return "complete"
        if started is False:
            raise JeopardaError(f"{out}: holds an unfinished conversion of other input or options; "
                                "use --overwrite to start over")
        if started is None and any(out.iterdir()):
            raise JeopardaError(f"{out}: folder is not empty and holds no jeoparda data set; "
                                "choose an empty folder or use --overwrite")
        state = "resume" if started else "fresh"
    else:
        (out / MANIFEST_NAME).unlink(missing_ok=True)
        for name in (*SPLITS, WORK_DIR):
            shutil.rmtree(out / name, ignore_errors=True)  # checked above: a real folder, not a link
    make_dirs(out, f"{WORK_DIR}/records")
    write_json(plan_file, {"fingerprint": plan.fingerprint})
    sweep_temps(out, f".{MANIFEST_NAME}.tmp-*")
    sweep_temps(out / WORK_DIR)
    sweep_temps(_records_dir(out))
    for split in SPLITS:
        sweep_temps(make_dirs(out, split))
    return state


def _finished_record(out: Path, chunk: Chunk) -> dict[str, Any] | None:
    """The chunk's record if its shard is complete and its checksum still matches."""
    rec_path = _records_dir(out) / f"{chunk.key}.json"
    shard = out / chunk.file
    refuse_link(shard)
    refuse_link(rec_path)
    if not rec_path.is_file():
        return None
    try:
        record = json.loads(rec_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("patches") == 0:  # every patch rejected: no shard was written
        return record
    return record if shard.is_file() and record.get("sha256") == file_sha256(shard) else None


def convert_chunk(source: Source, chunk: Chunk, out: Path, layout: Layout, keep: list[int] | None,
                  upsampler: Upsampler, compression: str, strict: bool, tick: Tick) -> dict[str, Any]:
    """Convert the patches of one chunk into its shard and return the chunk's record. A chunk
    whose patches were all rejected leaves no shard file (no shard is ever empty). Patches are
    read and upsampled ``upsampler.batch`` at a time (the same groups whatever the worker count)."""
    final = out / chunk.file
    refuse_link(final)
    tmp = temp_name(final)
    tmp.unlink(missing_ok=True)  # an earlier process of this PID (a container restart)
    os.close(open_write(tmp, exclusive=True))  # never a link; ShardWriter truncates it
    rejected: list[dict[str, str]] = []
    stats = ChunkStats(layout, len(source.classes))
    try:
        with ShardWriter(tmp, len(chunk.names), layout, compression) as writer:
            for start in range(0, len(chunk.names), upsampler.batch):
                patches = []
                for name in chunk.names[start:start + upsampler.batch]:
                    try:
                        patches.append(source.read(name))
                    except PatchError as exc:
                        if strict:
                            raise StrictStop(f"{exc.file}: {exc.reason} (patch {name})") from None
                        rejected.append({"patch": name, "split": chunk.split, "file": str(exc.file),
                                         "reason": exc.reason})
                        tick(1)
                for patch, arrays in zip(patches, shard_arrays(patches, upsampler, keep), strict=True):
                    writer.append(patch.name, **arrays)
                    stats.add(arrays)
                    tick(1)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:  # a full disk, reported without a name
            exc.filename = str(tmp)
        raise
    sha = None
    if stats.patches:
        sha = file_sha256(tmp)
        os.replace(tmp, final)
    else:
        tmp.unlink()
    record = stats.record(chunk, sha, rejected)
    write_json(_records_dir(out) / f"{chunk.key}.json", record)
    return record


_COUNTER: Any = None  # the pool's shared progress counter, set in each worker process


def _init_worker(counter: Any, started: Any, slot_base: int, owner: int) -> None:
    """A pool worker: it dies with ``owner`` (the converting process: an orphaned worker would
    wait for work forever), the progress counter, and its number among the node's conversion
    processes (a learned upsampler on GPUs takes its GPU by that number)."""
    global _COUNTER
    die_with(owner)
    _COUNTER = counter
    with started.get_lock():
        started.value += 1
        number = started.value - 1
    set_slot(slot_base + number)


def _shared_tick(n: int) -> None:
    with _COUNTER.get_lock():
        _COUNTER.value += n


def _pool_task(args: tuple[Any, ...]) -> dict[str, Any]:
    convert: Callable[..., dict[str, Any]] = convert_chunk  # args are convert_chunk's, less the tick
    return convert(*args, _shared_tick)


def convert_local(chunks: list[Chunk], plan: Plan, opts: ConvertOptions,
                  tick: Tick, local_rank: int = 0) -> list[dict[str, Any]]:
    """Convert this rank's chunks with ``opts.workers`` processes; skips finished ones. The node's
    conversion processes are numbered local rank x workers + worker (GPUs are dealt by number)."""
    out = Path(opts.out)
    records, todo = [], []
    for chunk in chunks:
        record = _finished_record(out, chunk)
        if record is None:
            todo.append(chunk)
        else:
            records.append(record)
            tick(len(chunk.names))
    layout = layout_for(plan)
    args = [(plan.source, c, out, layout, plan.keep, plan.upsampler, opts.compression, opts.strict) for c in todo]
    workers = min(opts.workers, len(todo))
    if workers <= 1:
        set_slot(local_rank * max(1, opts.workers))
        try:
            records += [convert_chunk(*a, tick) for a in args]
        finally:
            plan.source.close()
        return records
    ctx = mp.get_context("spawn")  # fork is unsafe under MPI and with threads
    counter, started = ctx.Value("q", 0), ctx.Value("i", 0)
    seen = 0
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(counter, started, local_rank * opts.workers, os.getpid())) as pool:
        pending = {pool.submit(_pool_task, a) for a in args}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                records += [f.result() for f in done]
                current = counter.value
                tick(current - seen)
                seen = current
        except BrokenProcessPool:
            raise JeopardaError("a conversion worker process died (out of memory or killed); "
                                "run the same command again to resume") from None
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return records


def run_conversion(opts: ConvertOptions, env: ClusterEnv,
                   make_tick: Callable[[int], Tick]) -> tuple[dict[str, Any], str]:
    """Convert (or resume) and return (manifest, state) on every rank."""
    comm = mpi_world(env)
    plan = make_plan(opts)
    state = root_decides(comm, lambda: prepare_out(opts, plan))
    out = Path(opts.out)
    if state == "complete":
        return json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8")), state
    mine = plan.chunks[env.rank::env.world_size]
    tick = make_tick(sum(len(c.names) for c in mine))
    records, failure = [], None
    try:
        records = convert_local(mine, plan, opts, tick, env.local_rank)
    except (StrictStop, JeopardaError) as exc:  # a damaged patch, a dead worker: every rank stops, not one
        failure = str(exc)
    except OSError as exc:  # a full disk on this rank's shards
        failure = os_error_line(exc, "convert")
    agree(comm, failure)
    manifest = build_manifest(plan, opts, [r for recs in comm.gather_objects(records) for r in recs])
    if env.is_root:
        write_json(out / MANIFEST_NAME, manifest)
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    comm.barrier()
    return manifest, state
