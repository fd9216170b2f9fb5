"""The quick-look PNG of a class map, drawn from one of the map's own overviews (never the full map)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from jeoparda.labels import NO_CLASS
from jeoparda.safe_files import writing

LOOK_SIDE = 1400  # the largest overview no wider or taller than this is drawn


def overview(path: Path, side: int = LOOK_SIDE) -> np.ndarray:
    """The largest level of the COG at ``path`` that fits in ``side`` x ``side`` (the smallest if none)."""
    with tifffile.TiffFile(path) as tif:
        pages = list(tif.pages)
        fits = [p for p in pages if max(p.shape) <= side]
        return (fits[0] if fits else pages[-1]).asarray()


def quicklook_from_overview(cog: Path, names: list[str], path: Path, tile: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch as LegendPatch

    classes = overview(cog)
    colours = plt.get_cmap("tab20")(np.arange(len(names)) % 20)
    rgb = np.ones((*classes.shape, 3))
    for k in range(len(names)):
        rgb[classes == k] = colours[k][:3]
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=100)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(f"{tile}: predicted classes (white: no patch or no class)", fontsize=9)
    ax.set_axis_off()
    present = sorted(set(np.unique(classes).tolist()) - {NO_CLASS})
    ax.legend(handles=[LegendPatch(color=colours[k], label=names[k][:40]) for k in present],
              loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    with writing(path, text=False) as fh:  # a link at path is refused, never followed
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
