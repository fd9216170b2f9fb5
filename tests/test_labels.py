import re
from pathlib import Path

import numpy as np
import pytest

from jeoparda.labels import CLASSES19, LABEL43_TO_19, LABELS43, UnknownLabelError, encode_labels

LABELS_DOC = Path(__file__).resolve().parents[1] / "docs" / "labels.md"


def doc_text() -> str:
    """docs/labels.md with its line breaks folded to spaces."""
    return " ".join(LABELS_DOC.read_text(encoding="utf-8").split())


def section(text: str, heading: str) -> str:
    start = text.index(heading) + len(heading)
    end = text.find(" ## ", start)
    return text[start:end if end >= 0 else len(text)]


def parse_table(text: str) -> dict[int, tuple[str, list[int]]]:
    flat = " ".join(text.split())
    return {int(m[1]): (m[2].strip(), [int(x) for x in m[3].split(",")])
            for m in re.finditer(r"(\d+) ([^←]+?) ← ([\d,]+)", flat)}


def test_mapping_matches_the_documented_table():
    table = parse_table(section(doc_text(), "the 43-label indices each takes"))
    assert len(table) == 19
    for cls, (name, sources) in table.items():
        assert CLASSES19[cls] == name
        for src in sources:
            assert LABEL43_TO_19[src] == cls
    unmapped = [i for i, c in enumerate(LABEL43_TO_19) if c is None]
    assert unmapped == [3, 4, 5, 6, 7, 8, 9, 10, 30, 32, 37]


def test_the_43_labels_are_documented_in_index_order():
    listed = [name.strip() for name in section(doc_text(), "index order 0–42").rstrip(". ").split(";")]
    assert listed == list(LABELS43)


def test_encode_multi_hot():
    y43, y19 = encode_labels(["Mixed forest", "Sea and ocean", "Airports"])
    assert np.flatnonzero(y43).tolist() == [5, 24, 42]
    assert np.flatnonzero(y19).tolist() == [10, 18]  # Airports has no 19-class counterpart
    assert y43.dtype == y19.dtype == np.uint8
    assert len(LABELS43) == 43


def test_unknown_label():
    with pytest.raises(UnknownLabelError, match="Lava"):
        encode_labels(["Lava"])


def test_corine_table_is_the_documented_one():
    """The reference-map code table, parsed from docs/labels.md, equals labels.CORINE_TO_19."""
    from jeoparda.labels import CORINE_TO_19, NO_CLASS

    mapped = section(doc_text(), "code → class").replace(", ", ",")
    mapped = mapped[:mapped.index("→ 255") + len("→ 255")]
    parsed = {}
    for codes, cls in re.findall(r"([\d,]+)→(\d+)", mapped.split("0 (nodata)")[0]):
        parsed.update({int(c): int(cls) for c in codes.split(",") if c})
    unlabelled = re.search(r"0 \(nodata\) and ([\d,]+) → 255", mapped)
    assert unlabelled is not None
    parsed[0] = NO_CLASS
    parsed.update({int(c): NO_CLASS for c in unlabelled.group(1).split(",") if c})
    assert parsed == CORINE_TO_19


def test_eurosat_classes_are_documented_in_index_order():
    from jeoparda.sources.eurosat import CLASSES

    listed = [name.strip() for name in section(doc_text(), "spell them:").rstrip(". ").split(",")]
    assert listed == list(CLASSES)
