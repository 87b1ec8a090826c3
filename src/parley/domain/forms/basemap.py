"""The offline base map: coastlines and land borders (Natural Earth 1:50m) for notice maps.

    land_rings(south, north, west, east) -> [[(lon, lat), …], …]   coastline rings in a box
    border_lines(south, north, west, east) -> [[(lon, lat), …], …] land borders in a box

Rules:
- The data ship in the package (mapdata/world-50m.bin, built by tools/basemap.py from the npm
  package world-atlas); nothing is fetched at run time, so an air-gapped station draws the same
  map. The file is read and decoded once per process.
- Rings are clipped to the box (Sutherland-Hodgman) so a map of the Korean peninsula does not
  carry all of Eurasia's coastline; the caller adds a margin and clips the picture again.
- The base map is context for a person, never evidence: the notice's coordinates are what is
  signed, and the text rendering states them exactly.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

Pt = tuple[float, float]  # (lon, lat) in degrees
Box = tuple[float, float, float, float]  # (west, south, east, north)


@dataclass(frozen=True)
class BaseMap:
    arcs: tuple[tuple[Pt, ...], ...]
    rings: tuple[tuple[int, ...], ...]  # arc references, ~i for arc i reversed
    ring_boxes: tuple[Box, ...]
    borders: tuple[int, ...]
    source: str


def _varints(data: bytes) -> Iterator[int]:
    n = shift = 0
    for b in data:
        n |= (b & 0x7F) << shift
        if b & 0x80:
            shift += 7
        else:
            yield n
            n = shift = 0


def _unzig(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


@cache
def load() -> BaseMap:
    raw = zlib.decompress(
        files("parley.domain.forms").joinpath("mapdata/world-50m.bin").read_bytes()
    )
    # The JSON header's length is the first varint; the rest is varints throughout.
    it = _varints(raw)
    head_len = next(it)
    pos = 0
    while raw[pos] & 0x80:
        pos += 1
    header = json.loads(raw[pos + 1 : pos + 1 + head_len])
    it = _varints(raw[pos + 1 + head_len :])
    sx, sy = (float(v) for v in header["scale"])
    tx, ty = (float(v) for v in header["translate"])
    arcs: list[tuple[Pt, ...]] = []
    for _ in range(header["arcs"]):
        x = y = 0
        pts = []
        for _ in range(next(it)):
            x += _unzig(next(it))
            y += _unzig(next(it))
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(tuple(pts))
    rings = [tuple(_unzig(next(it)) for _ in range(next(it))) for _ in range(header["rings"])]
    borders = tuple(next(it) for _ in range(next(it)))
    boxes = []
    for ring in rings:
        pts = [p for ref in ring for p in arcs[ref if ref >= 0 else ~ref]]
        lons, lats = [p[0] for p in pts], [p[1] for p in pts]
        boxes.append((min(lons), min(lats), max(lons), max(lats)))
    return BaseMap(tuple(arcs), tuple(rings), tuple(boxes), borders, header["source"])


def _ring_points(m: BaseMap, ring: tuple[int, ...]) -> list[Pt]:
    out: list[Pt] = []
    for ref in ring:
        arc = m.arcs[ref] if ref >= 0 else m.arcs[~ref][::-1]
        out.extend(arc[1:] if out else arc)  # consecutive arcs share their joining point
    return out


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _clip(points: list[Pt], box: Box) -> list[Pt]:
    """Sutherland-Hodgman: the part of a polygon inside an axis-aligned box."""
    west, south, east, north = box
    edges: list[tuple[Callable[[Pt], bool], Callable[[Pt, Pt], Pt]]] = [
        (lambda p: p[0] >= west, lambda a, b: _at_x(a, b, west)),
        (lambda p: p[0] <= east, lambda a, b: _at_x(a, b, east)),
        (lambda p: p[1] >= south, lambda a, b: _at_y(a, b, south)),
        (lambda p: p[1] <= north, lambda a, b: _at_y(a, b, north)),
    ]
    out = points
    for inside, cross in edges:
        if not out:
            break
        src, out = out, []
        prev = src[-1]
        for cur in src:
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
            prev = cur
    return out


def _at_x(a: Pt, b: Pt, x: float) -> Pt:
    t = (x - a[0]) / (b[0] - a[0])
    return (x, a[1] + t * (b[1] - a[1]))


def _at_y(a: Pt, b: Pt, y: float) -> Pt:
    t = (y - a[1]) / (b[1] - a[1])
    return (a[0] + t * (b[0] - a[0]), y)


def land_rings(south: float, north: float, west: float, east: float) -> list[list[Pt]]:
    """Coastline rings (land, lakes as holes) clipped to the box."""
    m = load()
    box = (west, south, east, north)
    out = []
    for ring, ring_box in zip(m.rings, m.ring_boxes, strict=True):
        if _overlaps(ring_box, box):
            clipped = _clip(_ring_points(m, ring), box)
            if len(clipped) >= 3:
                out.append(clipped)
    return out


def border_lines(south: float, north: float, west: float, east: float) -> list[list[Pt]]:
    """Land borders between countries, cut into the runs that lie in the box."""
    m = load()
    out: list[list[Pt]] = []
    for i in m.borders:
        run: list[Pt] = []
        for lon, lat in m.arcs[i]:
            if west <= lon <= east and south <= lat <= north:
                run.append((lon, lat))
            else:
                if len(run) >= 2:
                    out.append(run)
                run = []
        if len(run) >= 2:
            out.append(run)
    return out
