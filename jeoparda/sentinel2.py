"""Sentinel-2 band table and the canonical 12-band order used everywhere in jeoparda."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    """One Sentinel-2 L2A band as stored in BigEarthNet."""

    name: str
    resolution_m: int
    wavelength_nm: int

    @property
    def native_size(self) -> int:
        """Side length in pixels of a 1.2 km BigEarthNet patch at this band's resolution."""
        return PATCH_METRES // self.resolution_m


PATCH_METRES = 1200
TARGET_RESOLUTION_M = 10
TARGET_SIZE = PATCH_METRES // TARGET_RESOLUTION_M  # 120

#: Canonical order (docs/data-format.md): shards, models and statistics all use it.
BANDS: tuple[Band, ...] = (
    Band("B01", 60, 443),
    Band("B02", 10, 490),
    Band("B03", 10, 560),
    Band("B04", 10, 665),
    Band("B05", 20, 705),
    Band("B06", 20, 740),
    Band("B07", 20, 783),
    Band("B08", 10, 842),
    Band("B8A", 20, 865),
    Band("B09", 60, 945),
    Band("B11", 20, 1610),
    Band("B12", 20, 2190),
)
BAND_NAMES: tuple[str, ...] = tuple(b.name for b in BANDS)
BAND_INDEX: dict[str, int] = {name: i for i, name in enumerate(BAND_NAMES)}


def band_indices(resolution_m: int) -> tuple[int, ...]:
    """Indices (in canonical order) of the bands whose native resolution is ``resolution_m``."""
    return tuple(i for i, b in enumerate(BANDS) if b.resolution_m == resolution_m)


#: B10 (60 m, cirrus), absent from L2A products but in EuroSAT (L1C): between B09 and B11.
B10 = Band("B10", 60, 1375)
#: The 13-band canonical order of L1C data (EuroSAT).
BANDS13: tuple[Band, ...] = (*BANDS[:10], B10, *BANDS[10:])
BAND_NAMES13: tuple[str, ...] = tuple(b.name for b in BANDS13)

#: Sentinel-1 channels (dB), where converted: they follow the optical bands in this order.
S1_BANDS: tuple[str, ...] = ("VV", "VH")
