"""``data.bands``: which channels a loader delivers, in the canonical order of docs/data-format.md
(optical bands in the data set's order, then VV, VH)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jeoparda.errors import JeopardaError
from jeoparda.sentinel2 import S1_BANDS

ALL_WITH_S1 = "s2+s1"


@dataclass(frozen=True)
class BandChoice:
    optical: list[int] | None   # indices into the stored bands; None = all, as stored
    s1: list[int]               # indices into (VV, VH)
    names: list[str]            # the delivered channels, in order


def choose_bands(spec: str, stored: Sequence[str], has_s1: bool, where: str) -> BandChoice:
    """Resolve ``data.bands`` against a data set's bands; clear errors for what it lacks."""
    spec = spec.strip()
    if not spec:
        return BandChoice(None, [], list(stored))
    if spec.lower() == ALL_WITH_S1:
        wanted = [*stored, *S1_BANDS]
    else:
        wanted = [w.strip() for w in spec.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in stored and w not in S1_BANDS]
    if unknown:
        raise JeopardaError(f"data.bands: {unknown[0]} is not a band of {where} "
                            f"(has {', '.join([*stored, *(S1_BANDS if has_s1 else ())])})")
    s1 = [i for i, b in enumerate(S1_BANDS) if b in wanted]
    if s1 and not has_s1:
        raise JeopardaError(f"data.bands asks for {S1_BANDS[s1[0]]} but {where} holds no Sentinel-1 "
                            "data (convert with --with-s1)")
    optical = [i for i, b in enumerate(stored) if b in wanted]
    if not optical:
        raise JeopardaError("data.bands: at least one optical band is needed")
    names = [stored[i] for i in optical] + [S1_BANDS[i] for i in s1]
    return BandChoice(None if len(optical) == len(stored) else optical, s1, names)
