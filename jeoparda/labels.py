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


class UnknownClassError(ValueError):
    """A class name that is not one of the 19 classes."""


CLASS19_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES19)}


def encode_classes(names: Iterable[str]) -> np.ndarray:
    """Multi-hot (19,) uint8 vector from 19-class names (BigEarthNet v2.0 metadata)."""
    y19 = np.zeros(len(CLASSES19), dtype=np.uint8)
    for name in names:
        idx = CLASS19_INDEX.get(name)
        if idx is None:
            raise UnknownClassError(f"unknown class {name!r} (not one of the 19 BigEarthNet classes)")
        y19[idx] = 1
    return y19


#: CORINE Land Cover 2018 level-3 code of each of the 43 labels, in label order (335, glaciers,
#: is not among BigEarthNet's labels).
CORINE_CODES43: tuple[int, ...] = (
    111, 112, 121, 122, 123, 124, 131, 132, 133, 141, 142,
    211, 212, 213, 221, 222, 223, 231, 241, 242, 243, 244,
    311, 312, 313, 321, 322, 323, 324, 331, 332, 333, 334,
    411, 412, 421, 422, 423, 511, 512, 521, 522, 523,
)

#: Pixel value of a mask without a class: nodata (0) and CORINE codes without a 19-class counterpart.
NO_CLASS = 255

#: CORINE level-3 code in a BigEarthNet v2.0 reference map -> 19-class index, or NO_CLASS.
CORINE_TO_19: dict[int, int] = {
    111: 0, 112: 0, 121: 1, 211: 2, 212: 2, 213: 2, 221: 3, 222: 3, 223: 3, 241: 3, 231: 4,
    242: 5, 243: 6, 244: 7, 311: 8, 312: 9, 313: 10, 321: 11, 333: 11, 322: 12, 323: 12,
    324: 13, 331: 14, 411: 15, 412: 15, 421: 16, 422: 16, 511: 17, 512: 17, 521: 18, 522: 18,
    523: 18,
    **{code: NO_CLASS for code in (0, 122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 335, 423, 999)},
}


def corine_lookup() -> np.ndarray:
    """(65536,) uint8 table: reference-map code -> class index; codes outside the table -> 254
    (a marker for "unknown code", never a class index nor NO_CLASS)."""
    table = np.full(1 << 16, 254, dtype=np.uint8)
    for code, cls in CORINE_TO_19.items():
        table[code] = cls
    return table
