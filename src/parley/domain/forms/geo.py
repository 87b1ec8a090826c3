"""Geometry checks on integer micro-degree coordinates, and finding the shapes in a notice.

Rules:
- A point is {"lat_e6": int, "lon_e6": int}: micro-degrees (1e-6°, about 11 cm), because
  Parley's canonical JSON has no floats. Latitude within ±90°, longitude within ±180°.
- An area is {"shape": "polygon", "points": [...]} or {"shape": "circle", "center": point,
  "radius_m": int}. A polygon ring is closed (last point == first), has ≥ 4 points, no point
  repeating its predecessor, non-zero area, no edge crossing another, and no edge spanning more
  than 180° of longitude (areas across the antimeridian are split in two, as GeoJSON asks).
- Everything here is exact integer arithmetic: a check never depends on float rounding, so the
  sender, the receiver and an auditor reach the same verdict.
- Shapes are found by their structure, wherever they are in a notice, so a form dropped into a
  folder gets the same checks and the same map without code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from parley.domain.forms.paths import Path, walk

LAT_MAX = 90_000_000
LON_MAX = 180_000_000

Pt = tuple[int, int]  # (lat_e6, lon_e6)


def as_point(value: Any) -> Pt | None:
    """(lat, lon) if `value` is a well-typed point object (range not checked), else None."""
    if not isinstance(value, dict):
        return None
    lat, lon = value.get("lat_e6"), value.get("lon_e6")
    if type(lat) is int and type(lon) is int:
        return (lat, lon)
    return None


def as_ring(value: Any) -> list[Pt] | None:
    """The points of a polygon area if every one is a well-typed point, else None."""
    if not isinstance(value, dict) or value.get("shape") != "polygon":
        return None
    pts = value.get("points")
    if not isinstance(pts, list):
        return None
    ring = [as_point(p) for p in pts]
    if any(p is None for p in ring):
        return None
    return [p for p in ring if p is not None]


@dataclass(frozen=True)
class RingProblem:
    """One problem with a polygon ring: a FieldError code, the point index it concerns, params."""

    code: str
    index: int | None
    params: dict[str, object]


def _cross(o: Pt, a: Pt, b: Pt) -> int:
    # Orientation of (o, a, b) in the (lon, lat) plane: > 0 counter-clockwise, 0 collinear.
    return (a[1] - o[1]) * (b[0] - o[0]) - (a[0] - o[0]) * (b[1] - o[1])


def _on_segment(p: Pt, q: Pt, r: Pt) -> bool:
    # q collinear with p-r lies within their bounding box.
    return min(p[0], r[0]) <= q[0] <= max(p[0], r[0]) and min(p[1], r[1]) <= q[1] <= max(p[1], r[1])


def segments_intersect(p1: Pt, p2: Pt, q1: Pt, q2: Pt) -> bool:
    """True if closed segments p1-p2 and q1-q2 share any point (touching counts)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(q1, p1, q2))
        or (d2 == 0 and _on_segment(q1, p2, q2))
        or (d3 == 0 and _on_segment(p1, q1, p2))
        or (d4 == 0 and _on_segment(p1, q2, p2))
    )


def twice_area(ring: list[Pt]) -> int:
    """Shoelace sum (twice the signed area in micro-degree², lon as x, lat as y)."""
    return sum(a[1] * b[0] - b[1] * a[0] for a, b in pairwise(ring))


def in_range(p: Pt) -> bool:
    return -LAT_MAX <= p[0] <= LAT_MAX and -LON_MAX <= p[1] <= LON_MAX


def ring_problems(ring: list[Pt]) -> list[RingProblem]:
    """Every problem of a polygon ring, in a fixed order; [] for a valid ring."""
    if len(ring) < 4:
        return [RingProblem("polygon_too_few_points", None, {"count": len(ring)})]
    if ring[0] != ring[-1]:
        return [RingProblem("polygon_open", len(ring) - 1, {})]
    out: list[RingProblem] = []
    for i in range(1, len(ring)):
        if ring[i] == ring[i - 1]:
            out.append(RingProblem("polygon_repeated_point", i, {}))
    for i in range(len(ring) - 1):
        if abs(ring[i + 1][1] - ring[i][1]) > LON_MAX:
            out.append(RingProblem("polygon_antimeridian", i, {}))
    if out:
        return out  # the checks below assume distinct consecutive points
    edges = len(ring) - 1
    for i in range(edges):
        for j in range(i + 2, edges):
            if i == 0 and j == edges - 1:
                continue  # first and last edges share the closing point
            if segments_intersect(ring[i], ring[i + 1], ring[j], ring[j + 1]):
                out.append(RingProblem("polygon_self_intersects", i, {"i": i, "j": j}))
    # A bow-tie has zero net area too; name the crossing first, it is the clearer message.
    if not out and twice_area(ring) == 0:
        out.append(RingProblem("polygon_degenerate", None, {}))
    return out


@dataclass(frozen=True)
class Shape:
    """A drawable thing in a notice: "polygon", "circle" (radius_m), "route" or "point"."""

    kind: str
    path: Path
    points: tuple[Pt, ...]
    radius_m: int = 0
    name: str | None = None


def _name(value: dict[str, Any]) -> str | None:
    name = value.get("name")
    return name if isinstance(name, str) and name else None


def shapes(fields: Any) -> Iterator[Shape]:
    """Every well-typed area, route (a list of objects each with a "point") and standalone
    point in `fields`, in walk order. Points inside a polygon, circle or route are not repeated."""
    claimed: set[Path] = set()
    for path, value in walk(fields):
        if any(path[: len(c)] == c for c in claimed):
            continue
        ring = as_ring(value)
        if ring is not None:
            claimed.add(path)
            yield Shape("polygon", path, tuple(ring), name=_name(value))
            continue
        if isinstance(value, dict) and value.get("shape") == "circle":
            center = as_point(value.get("center"))
            radius = value.get("radius_m")
            if center is not None and type(radius) is int:
                claimed.add(path)
                yield Shape("circle", path, (center,), radius_m=radius, name=_name(value))
                continue
        if isinstance(value, list) and len(value) >= 2:
            route = [as_point(v.get("point")) if isinstance(v, dict) else None for v in value]
            if all(p is not None for p in route):
                claimed.add(path)
                yield Shape("route", path, tuple(p for p in route if p is not None))
                continue
        point = as_point(value)
        if point is not None:
            claimed.add(path)
            yield Shape("point", path, (point,), name=_name(value))
