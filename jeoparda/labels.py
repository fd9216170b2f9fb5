"""BigEarthNet label tables: the 43 CORINE labels, the 19-class nomenclature and the mapping."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: The 43 CORINE Land Cover labels of BigEarthNet v1.0, in index order 0-42.
LABELS43: tuple[str, ...] = (
    "Continuous urban fabric",
    "Discontinuous urban fabric",
    "Industrial or commercial units",
    "Road and rail networks and associated land",
    "Port areas",
    "Airports",
    "Mineral extraction sites",
    "Dump sites",
    "Construction sites",
    "Green urban areas",
    "Sport and leisure facilities",
    "Non-irrigated arable land",
    "Permanently irrigated land",
    "Rice fields",
    "Vineyards",
    "Fruit trees and berry plantations",
    "Olive groves",
    "Pastures",
    "Annual crops associated with permanent crops",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland",
    "Moors and heathland",
    "Sclerophyllous vegetation",
    "Transitional woodland/shrub",
    "Beaches, dunes, sands",
    "Bare rock",
    "Sparsely vegetated areas",
    "Burnt areas",
    "Inland marshes",
    "Peatbogs",
    "Salt marshes",
    "Salines",
    "Intertidal flats",
    "Water courses",
    "Water bodies",
    "Coastal lagoons",
    "Estuaries",
    "Sea and ocean",
)

#: The 19-class nomenclature (Sumbul et al.), in index order 0-18 (not alphabetical).
CLASSES19: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

#: 19-class index -> the 43-label indices that map to it.
CLASS19_SOURCES: tuple[tuple[int, ...], ...] = (
    (0, 1), (2,), (11, 12, 13), (14, 15, 16, 18), (17,), (19,), (20,), (21,), (22,), (23,),
    (24,), (25, 31), (26, 27), (28,), (29,), (33, 34), (35, 36), (38, 39), (40, 41, 42),
)

#: 43-label index -> 19-class index, or None for labels without a counterpart (3-10, 30, 32, 37).
LABEL43_TO_19: tuple[int | None, ...] = tuple(
    next((c for c, srcs in enumerate(CLASS19_SOURCES) if i in srcs), None) for i in range(43)
)

LABEL43_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS43)}


class UnknownLabelError(ValueError):
    """A label name that is not one of the 43 BigEarthNet labels."""


def encode_labels(names: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot (43,) and (19,) uint8 vectors for a list of 43-label names."""
    y43 = np.zeros(len(LABELS43), dtype=np.uint8)
    y19 = np.zeros(len(CLASSES19), dtype=np.uint8)
    for name in names:
        idx = LABEL43_INDEX.get(name)
        if idx is None:
            raise UnknownLabelError(f"unknown label {name!r}")
        y43[idx] = 1
        cls = LABEL43_TO_19[idx]
        if cls is not None:
            y19[cls] = 1
    return y43, y19
