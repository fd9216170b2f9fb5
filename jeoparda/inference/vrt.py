"""A GDAL VRT mosaic of several tiles' maps: one per coordinate system, since a VRT has one CRS
(BigEarthNet spans several UTM zones). Tiles overlap (Sentinel-2 tiles share about 10 km): each
source's no-data is transparent, so a tile never blanks its neighbour's pixels."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from jeoparda.labels import NO_CLASS
from jeoparda.safe_files import write_bytes_atomic


def write_vrts(folder: Path, maps: list[tuple[Path, dict[str, Any]]]) -> list[Path]:
    """``folder/mosaic.vrt`` (one CRS) or ``folder/mosaic-EPSG<code>.vrt`` per CRS; ``maps``: each
    class map with its summary (epsg, origin, width, height)."""
    by_crs: dict[int, list[tuple[Path, dict[str, Any]]]] = {}
    for path, summary in maps:
        by_crs.setdefault(int(summary["epsg"]), []).append((path, summary))
    written = []
    for epsg, group in sorted(by_crs.items()):
        name = "mosaic.vrt" if len(by_crs) == 1 else f"mosaic-EPSG{epsg}.vrt"
        write_bytes_atomic(folder / name, _vrt(folder, epsg, group).encode())
        written.append(folder / name)
    return written


def _vrt(folder: Path, epsg: int, group: list[tuple[Path, dict[str, Any]]], pixel: float = 10.0) -> str:
    x0 = min(s["origin"][0] for _, s in group)
    y0 = max(s["origin"][1] for _, s in group)
    x1 = max(s["origin"][0] + s["width"] * pixel for _, s in group)
    y1 = min(s["origin"][1] - s["height"] * pixel for _, s in group)
    width, height = round((x1 - x0) / pixel), round((y0 - y1) / pixel)
    sources = []
    for path, s in group:
        left, top = round((s["origin"][0] - x0) / pixel), round((y0 - s["origin"][1]) / pixel)
        rel = escape(str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path))
        sources.append(
            f'    <ComplexSource>\n'
            f'      <SourceFilename relativeToVRT="{int(path.is_relative_to(folder))}">{rel}</SourceFilename>\n'
            f'      <SourceBand>1</SourceBand>\n'
            f'      <SrcRect xOff="0" yOff="0" xSize="{s["width"]}" ySize="{s["height"]}"/>\n'
            f'      <DstRect xOff="{left}" yOff="{top}" xSize="{s["width"]}" ySize="{s["height"]}"/>\n'
            f'      <NODATA>{NO_CLASS}</NODATA>\n'
            f'    </ComplexSource>\n')
    return (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
            f'  <SRS dataAxisToSRSAxisMapping="1,2">EPSG:{epsg}</SRS>\n'
            f'  <GeoTransform>{x0!r}, {pixel!r}, 0.0, {y0!r}, 0.0, {-pixel!r}</GeoTransform>\n'
            f'  <VRTRasterBand dataType="Byte" band="1">\n'
            f'    <NoDataValue>{NO_CLASS}</NoDataValue>\n'
            + "".join(sources) +
            '  </VRTRasterBand>\n</VRTDataset>\n')
