"""The report's I/O section: ``jeoparda bench io`` runs (job ``io``), one table per run.

Each epoch record of such a run is one pass (docs/results-log.md, "bench io"): its ``io_kind``
(cold, cold (unchecked), warm, re-read, as found), ``io_source`` (direct or staged),
aggregate images/s and GB/s, the slowest rank's time to its first batch and the range over
ranks. run_end's ``bench`` holds the summary: staging, the memory note, the verdict on a need.
"""
from __future__ import annotations

from typing import Any

from jeoparda.report.cells import DASH, cell, fmt, pct
from jeoparda.report.scaling import Run, finite

HOW = ("Storage read in training's access pattern without a model (`jeoparda bench io`). Cold passes start "
       "with the shards' pages dropped from the page cache and measure the file system (\"unchecked\": the drop "
       "could not be verified); warm passes read memory; \"re-read\" passes read again more than memory holds; "
       "\"as found\" passes read whatever was cached (the share is given). GB/s counts the bytes the patches "
       "stand for as delivered (uint16 bands, S1, targets). Per rank: the slowest and fastest rank's images/s.")


def _rank_range(metrics: dict[str, Any]) -> str:
    rates = [finite(r.get("images_per_s")) for r in metrics.get("io_ranks") or [] if isinstance(r, dict)]
    known = [r for r in rates if r is not None]
    return f"{min(known):,.0f}–{max(known):,.0f}" if known else DASH


def run_table(run: Run) -> list[str]:
    """One bench io run: a heading with its set-up, a row per pass, its notes."""
    st = run.start
    extra = st.extra
    summary = (run.end.bench if run.end else None) or {}
    lines = [f"### {cell(run.path.parent.name)}: {cell(st.dataset)}, {extra.get('io_split', '?')} split "
             f"on {cell(run.system)}", "",
             f"{st.world_size} rank(s) on {st.nodes} node(s), {extra.get('io_readers_per_rank', '?')} reader(s) per "
             f"rank, batch {st.batch_size_per_worker}; start-up {fmt(finite(extra.get('io_startup_s')), 3)} s; "
             f"status {run.status}.", "",
             "| pass | source | cache | images/s | GB/s | first batch (s) | per rank images/s | cached before |",
             "|---|---|---|---|---|---|---|---|"]
    for e in run.epochs:
        m = e.metrics
        lines.append(f"| {m.get('io_pass', e.epoch)} | {cell(m.get('io_source', DASH))} "
                     f"| {cell(m.get('io_kind', DASH))} "
                     f"| {e.images_per_s:,.1f} | {fmt(finite(m.get('io_gb_per_s')), 3)} "
                     f"| {fmt(finite(m.get('io_first_batch_s')), 3)} | {_rank_range(m)} "
                     f"| {pct(finite(m.get('io_cached_before')))} |")
    lines.append("")
    staging = summary.get("staging")
    if isinstance(staging, dict) and finite(staging.get("seconds")) is not None:
        lines += [f"Staging to node-local storage: {staging['seconds']:.2f} s, "
                  f"{fmt(finite(staging.get('gb_per_s_per_node')), 3)} GB/s per node.", ""]
    for key in ("memory_note",):
        if isinstance(summary.get(key), str):
            lines += [cell(summary[key][:1].upper() + summary[key][1:]) + ".", ""]
    need = summary.get("need")
    if isinstance(need, dict) and isinstance(need.get("note"), str):
        lines += [f"**{cell(need['note'])}**", ""]
    return lines


def io_section(runs: list[Run]) -> list[str]:
    """The whole section (nothing where no run is a bench io run)."""
    if not runs:
        return []
    lines = ["## I/O", "", HOW, ""]
    for run in runs:
        lines += run_table(run)
    return lines
