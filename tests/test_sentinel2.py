from jeoparda.sentinel2 import BAND_NAMES, BANDS, band_indices


def test_canonical_order_and_sizes():
    assert BAND_NAMES == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                          "B11", "B12")
    assert [BAND_NAMES[i] for i in band_indices(10)] == ["B02", "B03", "B04", "B08"]
    assert [BAND_NAMES[i] for i in band_indices(20)] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    assert [BAND_NAMES[i] for i in band_indices(60)] == ["B01", "B09"]
    assert {b.name: b.native_size for b in BANDS}["B05"] == 60
    assert {b.name: b.native_size for b in BANDS}["B09"] == 20
