"""Screenshots small enough to keep in the repository (docs/screenshots/).

A full-page screenshot of a long page is megabytes (history.png was 1.2 MB at 14,000 px).
`small_png` keeps at most `MAX_HEIGHT` pixels from the top (every documented page fits but the
history, whose top is what docs/console.md shows), reduces it to a 64-colour palette (screens
are flat colours and anti-aliased text, which a palette keeps legible) and writes an optimised
PNG. The documented pictures went from 3.8 MB to 1.1 MB.

    .venv/bin/python -m tests.shots docs/screenshots/*.png     # shrink files in place
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

MAX_HEIGHT = 5000
COLOURS = 64
MAX_BYTES = 300_000  # tests/test_console.py checks every documented picture against it


def small_png(src: Path, dst: Path) -> None:
    with Image.open(src) as im:
        rgb = im.convert("RGB")
    if rgb.height > MAX_HEIGHT:
        rgb = rgb.crop((0, 0, rgb.width, MAX_HEIGHT))
    small = rgb.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(dst, format="PNG", optimize=True)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        small_png(Path(name), Path(name))
