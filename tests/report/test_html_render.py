"""The HTML report renders in a real browser: headless Chromium draws the page from the one file,
tables and the embedded plots included (the plots' line colours appear in the screenshot)."""
import os
import shutil
import signal
import subprocess

import pytest

from jeoparda.report.report import make_report
from tests.report.test_baseline import write_run

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
#: matplotlib's first two line colours: a system's line in each comparison plot
LINE_COLOURS = {"C0": (31, 119, 180), "C1": (255, 127, 14)}


def screenshot(page, png, profile):
    """Chromium's screenshot of ``page``; its whole process group ends with it, even on a timeout."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", "--window-size=1280,3000", f"--screenshot={png}", page.as_uri()]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its renderer and GPU helpers, if any outlived it
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (scripts/install_system.sh installs it)")
def test_the_report_renders_with_its_plots_in_chromium(tmp_path):
    mpimg = pytest.importorskip("matplotlib.image")
    for system, rates in (("alpha", (100.0, 180.0)), ("beta", (60.0, 110.0))):
        for world, rate in zip((1, 2), rates):
            write_run(tmp_path / "runs" / f"{system}-{world}", system=system, world=world, rate=rate)
    make_report([str(tmp_path / "runs" / "*")], tmp_path / "rep")
    page = tmp_path / "rep" / "report.html"
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "report.html"  # alone: nothing beside it to load
    shutil.copy(page, moved)
    png = tmp_path / "shot.png"
    screenshot(moved, png, tmp_path / "profile")
    assert png.exists(), "Chromium wrote no screenshot"
    pixels = (mpimg.imread(png)[..., :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (3000, 1280)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    for name, rgb in LINE_COLOURS.items():
        assert rgb in colours, f"no {name} line pixels: the embedded plots did not render"
    assert len(colours) > 50  # text, tables and plots, not a blank or error page
