import re
from pathlib import Path

import numpy as np
import pytest

from jeoparda.labels import CLASSES19, LABEL43_TO_19, LABELS43, UnknownLabelError, encode_labels

# The 43->19 table exactly as DESIGN.md writes it.
DESIGN_TABLE = """0 Urban fabric ← 0,1 · 1 Industrial or commercial units ← 2 · 2 Arable land ← 11,12,13 ·
3 Permanent crops ← 14,15,16,18 · 4 Pastures ← 17 · 5 Complex cultivation patterns ← 19 ·
6 Land principally occupied by agriculture, with significant areas of natural vegetation ← 20 ·
7 Agro-forestry areas ← 21 · 8 Broad-leaved forest ← 22 · 9 Coniferous forest ← 23 ·
10 Mixed forest ← 24 · 11 Natural grassland and sparsely vegetated areas ← 25,31 ·
12 Moors, heathland and sclerophyllous vegetation ← 26,27 · 13 Transitional woodland, shrub ← 28 ·
14 Beaches, dunes, sands ← 29 · 15 Inland wetlands ← 33,34 · 16 Coastal wetlands ← 35,36 ·
17 Inland waters ← 38,39 · 18 Marine waters ← 40,41,42."""


def parse_table(text: str) -> dict[int, tuple[str, list[int]]]:
    flat = " ".join(text.split())
    return {int(m[1]): (m[2].strip(), [int(x) for x in m[3].split(",")])
            for m in re.finditer(r"(\d+) ([^←]+?) ← ([\d,]+)", flat)}


def test_mapping_matches_design_table():
    table = parse_table(DESIGN_TABLE)
    assert len(table) == 19
    for cls, (name, sources) in table.items():
        assert CLASSES19[cls] == name
        for src in sources:
            assert LABEL43_TO_19[src] == cls
    unmapped = [i for i, c in enumerate(LABEL43_TO_19) if c is None]
    assert unmapped == [3, 4, 5, 6, 7, 8, 9, 10, 30, 32, 37]


def test_design_file_still_holds_this_table():
    design = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"
    if not design.is_file():
        pytest.skip("shared/DESIGN.md not beside the checkout")
    assert " ".join(DESIGN_TABLE.split()) in " ".join(design.read_text().split())


def test_encode_multi_hot():
    y43, y19 = encode_labels(["Mixed forest", "Sea and ocean", "Airports"])
    assert np.flatnonzero(y43).tolist() == [5, 24, 42]
    assert np.flatnonzero(y19).tolist() == [10, 18]  # Airports has no 19-class counterpart
    assert y43.dtype == y19.dtype == np.uint8
    assert len(LABELS43) == 43


def test_unknown_label():
    with pytest.raises(UnknownLabelError, match="Lava"):
        encode_labels(["Lava"])


def test_corine_table_is_design_mds():
    """The reference-map code table, parsed from DESIGN.md's text, equals labels.CORINE_TO_19."""
    import re

    from jeoparda.labels import CORINE_TO_19, NO_CLASS

    design = Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md"
    if not design.is_file():
        pytest.skip("shared/DESIGN.md not beside the checkout")
    text = " ".join(design.read_text().split())
    start = text.index("111,112→0")
    mapped = text[start:text.index("→ 255", start)].replace(", ", ",")  # line breaks inside code lists
    parsed = {}
    for codes, cls in re.findall(r"([\d,]+)→(\d+)", mapped):
        parsed.update({int(c): int(cls) for c in codes.split(",") if c})
    unlabelled = re.search(r"0 \(nodata\) and ([\d,]+)\s*$", mapped)
    assert unlabelled is not None
    parsed[0] = NO_CLASS
    parsed.update({int(c): NO_CLASS for c in unlabelled.group(1).split(",") if c})
    assert parsed == CORINE_TO_19
