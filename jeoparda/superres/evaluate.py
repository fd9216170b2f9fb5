"""``jeoparda sr eval``: the model against bicubic and bilinear interpolation at reduced scale."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from jeoparda.sentinel2 import BAND_NAMES
from jeoparda.superres.data import Native
from jeoparda.superres.metrics import Accumulator
from jeoparda.superres.network import SRPair
from jeoparda.superres.pairs import GROUPS, SCALE, full_inputs, reduced_inputs

METHODS = ("model", "bicubic", "bilinear")
INTERPOLATIONS = METHODS[1:]
#: Per patch, per group name: the inputs under each interpolation, and the truth (digital numbers).
Case = dict[str, tuple[dict[str, np.ndarray], np.ndarray]]


def evaluate(pair: SRPair, patches: Iterable[Native], mtf: float,
             tick: Callable[[int], object] | None = None) -> dict[str, float | int]:
    """Flat figures at reduced scale: the model's as ``rmse_20m`` ..., the baselines' as
    ``bicubic_rmse_20m`` ..., and ``rmse_20m_reduction`` (1 - model / bicubic RMSE) per group."""
    def cases() -> Iterator[Case]:
        for bands in patches:
            case: Case = {}
            for name, g in GROUPS.items():
                inputs, y = reduced_inputs(g, bands, mtf, INTERPOLATIONS)
                case[name] = inputs, y / SCALE
            yield case

    return _score(pair, cases(), "", tick)


def evaluate_full(pair: SRPair, patches: Iterable[tuple[Native, np.ndarray]],
                  tick: Callable[[int], object] | None = None) -> dict[str, float | int]:
    """At full resolution against a known 10 m truth ((12, 120, 120) per patch: the synthetic
    archive's renderings), the same figures with keys prefixed ``full_``."""
    def cases() -> Iterator[Case]:
        for bands, truth in patches:
            yield {name: ({m: full_inputs(g, bands, m)[None] for m in INTERPOLATIONS}, truth[None, list(g.outputs)])
                   for name, g in GROUPS.items()}

    return _score(pair, cases(), "full_", tick)


@torch.no_grad()
def _score(pair: SRPair, cases: Iterable[Case], prefix: str,
           tick: Callable[[int], object] | None) -> dict[str, float | int]:
    """Accumulate the model (fed the bicubic inputs) and the interpolations against the truth."""
    pair.eval()
    acc = {(m, g): Accumulator(tuple(BAND_NAMES[b] for b in GROUPS[g].outputs)) for m in METHODS for g in GROUPS}
    count = 0
    for case in cases:
        for name, (inputs, truth) in case.items():
            out = pair.nets[name](torch.from_numpy(inputs["bicubic"])).numpy()
            acc["model", name].add(truth, np.clip(out / SCALE, 0, 65535))
            for method in INTERPOLATIONS:
                # clipped as the model's output is, and as convert stores either (uint16)
                acc[method, name].add(truth, np.clip(inputs[method][:, GROUPS[name].residual_channels] / SCALE,
                                                     0, 65535))
        count += 1
        if tick is not None:
            tick(1)
    return {f"{prefix}patches": count, **_results(acc, prefix)}


def _results(acc: dict[tuple[str, str], Accumulator], prefix: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for (method, group), a in acc.items():
        name = prefix if method == "model" else f"{prefix}{method}_"
        result.update({f"{name}{k}": v for k, v in a.scores(group).items()})
    for group in GROUPS:
        model, bicubic = result[f"{prefix}rmse_{group}"], result[f"{prefix}bicubic_rmse_{group}"]
        result[f"{prefix}rmse_{group}_reduction"] = 1.0 - model / bicubic if bicubic > 0 else 0.0
    return result


def summary_lines(figures: dict[str, float | int], prefix: str = "") -> list[str]:
    """A table per group: RMSE, SRE and SAM for each method, then per-band RMSE."""
    if prefix:
        figures = {k[len(prefix):]: v for k, v in figures.items() if k.startswith(prefix)}
        lines = [f"{figures['patches']} patches at full resolution against the known 10 m truth"]
    else:
        lines = [f"{figures['patches']} held-out patches, reduced scale (Wald's protocol)"]
    for group, g in GROUPS.items():
        lines.append(f"\n{group} bands: {'method':<9}{'RMSE':>9}{'SRE dB':>9}{'SAM deg':>9}")
        for method in METHODS:
            p = "" if method == "model" else f"{method}_"
            lines.append(f"{'':10}{method:<9}{figures[p + 'rmse_' + group]:>9.1f}{figures[p + 'sre_' + group]:>9.2f}"
                         f"{figures[p + 'sam_' + group]:>9.3f}")
        names = [BAND_NAMES[b] for b in g.outputs]
        lines.append(f"{'':10}{'RMSE per band':<18}" + "".join(f"{n:>8}" for n in names))
        for method in METHODS:
            p = "" if method == "model" else f"{method}_"
            lines.append(f"{'':10}{method:<18}" + "".join(f"{figures[p + 'rmse_' + n]:>8.1f}" for n in names))
        r = figures[f"rmse_{group}_reduction"]
        lines.append(f"{'':10}model RMSE {100 * abs(r):.1f} % {'below' if r >= 0 else 'above'} bicubic")
    return lines
