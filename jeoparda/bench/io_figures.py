"""The figures of ``jeoparda bench io``: every rank's pass combined, passes summarised, the text.

A pass of the job lasts from the common start (a barrier) to the slowest rank's last batch, as an
epoch of synchronous training does: aggregate images/s = all ranks' patches / that time; a node's
figure, its ranks' patches / its slowest rank's time; time to first batch, the slowest rank's
(the first training step waits for every rank's). GB/s counts the bytes the patches stand for as
delivered (uint16 bands, S1, targets; decimal GB), which is what shards hold uncompressed.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

#: MLPerf Storage's rule: a data set at least this many times the node's memory measures storage.
MEMORY_RULE = 5


def _rates(images: int, nbytes: int, seconds: float) -> dict[str, float]:
    """images/s and GB/s (decimal) of a share read in ``seconds``."""
    return {"images_per_s": images / max(seconds, 1e-9), "gb_per_s": nbytes / 1e9 / max(seconds, 1e-9)}


def pass_figures(rows: list[dict[str, Any]], number: int, kind: str, where: str) -> dict[str, Any]:
    """One pass over all ranks (``rows``: each rank's ``rank, host, seconds, images, bytes,
    first_batch_s, cached_before``)."""
    seconds = max(r["seconds"] for r in rows)
    images, nbytes = sum(r["images"] for r in rows), sum(r["bytes"] for r in rows)
    by_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_host[r["host"]].append(r)
    nodes = [{"host": host, "ranks": len(mine), **_rates(sum(r["images"] for r in mine), sum(r["bytes"] for r in mine),
                                                         max(r["seconds"] for r in mine))}
             for host, mine in sorted(by_host.items())]
    ranks = [{**r, **_rates(r["images"], r["bytes"], r["seconds"])} for r in sorted(rows, key=lambda r: r["rank"])]
    cached = [r["cached_before"] for r in rows if r["cached_before"] is not None]
    return {"pass": number, "kind": kind, "source": where, "seconds": seconds, "images": images, "bytes": nbytes,
            **_rates(images, nbytes, seconds), "first_batch_s": max(r["first_batch_s"] for r in rows),
            "cached_before": statistics.mean(cached) if cached else None, "ranks": ranks, "nodes": nodes}


def warm_kind(cached: list[float | None]) -> str:
    """``warm`` where every node found (nearly) all its files' pages cached, else ``as found``."""
    known = [c for c in cached if c is not None]
    return "warm" if known and min(known) >= 0.95 else "as found"


def medians(passes: list[dict[str, Any]], kind: str, where: str) -> dict[str, Any] | None:
    """Median images/s, GB/s, first batch and per-rank images/s range of the passes of one kind."""
    mine = [p for p in passes if p["kind"] == kind and p["source"] == where]
    if not mine:
        return None
    per_rank = [r["images_per_s"] for p in mine for r in p["ranks"]]
    return {"passes": len(mine), **{k: statistics.median(p[k] for p in mine)
                                    for k in ("images_per_s", "gb_per_s", "first_batch_s", "seconds")},
            "rank_images_per_s_min": min(per_rank), "rank_images_per_s_max": max(per_rank)}


def summarise(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per source (``direct``, ``staged``) and kind: the medians."""
    return {where: {kind: found for kind in ("cold", "cold (unchecked)", "warm", "re-read", "as found")
                    if (found := medians(passes, kind, where)) is not None}
            for where in dict.fromkeys(p["source"] for p in passes)}


def storage_figure(summary: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The figure that stands for the storage: direct cold passes, else the first direct kind measured."""
    direct = summary.get("direct", {})
    for kind in ("cold", "cold (unchecked)", "as found", "re-read", "warm"):
        if kind in direct:
            return kind, direct[kind]
    return None


def need_verdict(summary: dict[str, Any], need: float, source: str) -> dict[str, Any]:
    """Whether the storage delivers ``need`` images/s (all ranks together)."""
    found = storage_figure(summary)
    if found is None:
        return {"need_images_per_s": need, "keeps_up": None, "note": "no pass was measured"}
    kind, figures = found
    rate = figures["images_per_s"]
    keeps = rate >= need
    note = (f"storage {'keeps up' if keeps else 'does NOT keep up'}: {rate:,.0f} images/s ({kind} passes) "
            f"{'>=' if keeps else '<'} {need:,.0f} needed ({source}); {rate / need:.2f}x")
    if kind != "cold":
        note += "; not a checked cold figure, so the page cache may have helped (--cold)"
    return {"need_images_per_s": need, "keeps_up": keeps, "ratio": rate / need, "figure_kind": kind, "note": note}


def memory_note(dataset_bytes: int, memory_bytes: int, nodes: int, cold: bool, asked: bool = False) -> str:
    """What the passes can measure, given the split's size against the memory of all the job's nodes
    (``memory_bytes``: their sum), the page cache's upper bound."""
    size = f"the split's shards ({dataset_bytes / 1e9:.2f} GB)"
    mem = f"the memory of the job's {nodes} node(s) ({memory_bytes / 1e9:.1f} GB)"
    if dataset_bytes >= MEMORY_RULE * memory_bytes:
        return f"{size} are at least {MEMORY_RULE}x {mem}: every pass reads mostly from storage"
    text = (f"{size} are less than {MEMORY_RULE}x {mem} (MLPerf Storage's rule for measuring storage): "
            "warm passes read the page cache, not the file system")
    if cold:
        return text + "; the cold passes, which start with the pages dropped, measure the storage"
    return text + ("; --cold could not drop the pages here, so no pass measured the storage" if asked
                   else "; use --cold to measure the storage")


def pass_line(p: dict[str, Any]) -> str:
    """One pass, as bench io prints it."""
    ranks = ", ".join(f"rank {r['rank']} {r['images_per_s']:,.0f}" for r in p["ranks"][:8])
    more = f", ... ({len(p['ranks'])} ranks)" if len(p["ranks"]) > 8 else ""
    cached = "" if p["cached_before"] is None else f"; {100 * p['cached_before']:.0f} % cached before"
    nodes = (" [" + ", ".join(f"{n['host']} {n['images_per_s']:,.0f}" for n in p["nodes"]) + " images/s]"
             if len(p["nodes"]) > 1 else "")
    return (f"pass {p['pass']} {p['source']} {p['kind']}: {p['images_per_s']:,.1f} images/s, "
            f"{p['gb_per_s']:.3f} GB/s in {p['seconds']:.2f} s ({ranks}{more} images/s){nodes}; first batch "
            f"{p['first_batch_s']:.3f} s{cached}")
