"""A map picture of a notice: every area, route and point it names, as SVG, over the offline
base map (coastlines and land borders, domain/forms/basemap.py).

Rules:
- Equirectangular projection over the bounding box of the notice's shapes with a 10 % margin,
  widened to at least MIN_SPAN_DEG and to an aspect between 1:MAX_ASPECT and MAX_ASPECT:1 so the
  coast around a small or long, thin area is still recognisable (the Korean peninsula around a
  launch site); longitude is scaled by cos(mid-latitude) so shapes keep their proportions.
- Land is drawn from the packaged Natural Earth data, clipped to the map; no tile server, no
  network: the console, `parley notice show --map` and printed transcripts draw the same map.
- A graticule at a round step (…, 0.1°, 0.2°, 0.5°, 1°, 2°, 5° …) labelled in degrees; each shape
  labelled with its field name (in `lang`) and its own name, and listed in a legend.
- Every piece of text from the notice is XML-escaped and stripped of characters XML cannot
  carry: a notice is untrusted input, and the picture goes into the operator console.
- Deterministic: the same fields give the same bytes (coordinates printed with one decimal).
- Shapes that are not drawable (no points, coordinates out of range, a radius outside 1 m …
  5000 km) are left out; validation has reported them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from parley.domain.forms import basemap, geo, messages, timefmt
from parley.domain.forms.model import Form

MAP_SIZE = 640  # the longer side of the map area, in px
PAD = 56  # room for graticule labels
LEGEND_ROW = 20
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_STEPS_E6 = (
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    30_000_000,
    45_000_000,
)
_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_METRES_PER_DEGREE = 111_320.0


def _text(value: str) -> str:
    return escape(_XML_BAD.sub("\ufffd", value))


def _f(v: float) -> str:
    return f"{v:.1f}"


def _label(form: Form, shape: geo.Shape, lang: str) -> str:
    where = messages.human_path(form, shape.path, lang)
    return f"{where}: {shape.name}" if shape.name else where


def _circle_extent(shape: geo.Shape) -> tuple[float, float]:
    lat = shape.points[0][0] / 1e6
    dlat = shape.radius_m / _METRES_PER_DEGREE
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    return dlat, dlon


MIN_SPAN_DEG = 1.5
MAX_ASPECT = 1.6
LAND = "#efe9d8"
SEA = "#dcebf5"


def _bbox(shapes: list[geo.Shape]) -> tuple[float, float, float, float]:
    lats: list[float] = []
    lons: list[float] = []
    for s in shapes:
        dlat, dlon = _circle_extent(s) if s.kind == "circle" else (0.0, 0.0)
        for lat_e6, lon_e6 in s.points:
            lats += [lat_e6 / 1e6 - dlat, lat_e6 / 1e6 + dlat]
            lons += [lon_e6 / 1e6 - dlon, lon_e6 / 1e6 + dlon]
    s_lat, n_lat = max(min(lats), -90.0), min(max(lats), 90.0)
    w_lon, e_lon = max(min(lons), -180.0), min(max(lons), 180.0)
    # A single point still gets a visible neighbourhood; then a 10 % margin on every side.
    mid_lat, mid_lon = (n_lat + s_lat) / 2, (e_lon + w_lon) / 2
    coslat = max(math.cos(math.radians(mid_lat)), 0.05)
    span_lat = max((n_lat - s_lat) * 1.2, MIN_SPAN_DEG)
    span_lon = max((e_lon - w_lon) * 1.2, MIN_SPAN_DEG / coslat)
    # Neither a ribbon nor a tower: widen the shorter side (in projected units).
    wide, high = span_lon * coslat, span_lat
    if wide > high * MAX_ASPECT:
        span_lat = wide / MAX_ASPECT
    elif high > wide * MAX_ASPECT:
        span_lon = high / MAX_ASPECT / coslat
    span_lat = min(span_lat, 180.0)
    span_lon = min(span_lon, 360.0)
    mid_lat = min(max(mid_lat, -90 + span_lat / 2), 90 - span_lat / 2)
    return (
        mid_lat - span_lat / 2,
        mid_lat + span_lat / 2,
        mid_lon - span_lon / 2,
        mid_lon + span_lon / 2,
    )


def _drawable(shape: geo.Shape) -> bool:
    # Invalid shapes are reported by `validate`; the picture simply leaves them out.
    if not shape.points or not all(geo.in_range(p) for p in shape.points):
        return False
    return shape.kind != "circle" or 0 < shape.radius_m <= 5_000_000


def _degree_label(e6: int, positive: str, negative: str) -> str:
    text = timefmt.degrees(e6).rstrip("0").rstrip(".")
    hemisphere = "" if e6 == 0 else (positive if e6 > 0 else negative)
    return f"{text}°{hemisphere}"


def render_map_svg(
    form: Form, fields: Mapping[str, Any], lang: str = "en", *, pickable: bool = False
) -> str:
    """An SVG document drawing the notice's areas, routes and points; labels in `lang`.

    `pickable` adds the projection as data- attributes (west, north, degrees to px in x and y,
    the map's offset) so a page can turn a click into a position (web/static/mappick.js)."""
    shapes = [s for s in geo.shapes(fields) if _drawable(s)]
    title = f"{form.title(lang)} — {form.id} v{form.version}"
    if not shapes:
        none = (
            "이 통보문에는 위치 정보가 없습니다" if lang == "ko" else "No positions in this notice"
        )
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="60" viewBox="0 0 400 60" '
            'font-family="sans-serif" font-size="13">'
            f"<title>{_text(title)}</title>"
            f'<text x="10" y="35">{_text(none)}</text></svg>\n'
        )
    south, north, west, east = _bbox(shapes)
    coslat = max(math.cos(math.radians((north + south) / 2)), 0.05)
    scale = min(MAP_SIZE / ((east - west) * coslat), MAP_SIZE / (north - south))
    map_w, map_h = (east - west) * coslat * scale, (north - south) * scale

    def xy(lat_e6: int, lon_e6: int) -> tuple[float, float]:
        return PAD + (lon_e6 / 1e6 - west) * coslat * scale, PAD + (north - lat_e6 / 1e6) * scale

    width = map_w + 2 * PAD
    legend_top = PAD + map_h + 36
    height = legend_top + LEGEND_ROW * len(shapes) + 12
    pick = (
        f' class="pick-map" data-west="{west:.6f}" data-north="{north:.6f}" '
        f'data-kx="{coslat * scale:.6f}" data-ky="{scale:.6f}" data-pad="{PAD}" '
        f'data-w="{_f(map_w)}" data-h="{_f(map_h)}"'
        if pickable
        else ""
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="sans-serif" font-size="11"{pick}>',
        f"<title>{_text(title)}</title>",
        f'<clipPath id="map"><rect x="{PAD}" y="{PAD}" width="{_f(map_w)}" '
        f'height="{_f(map_h)}"/></clipPath>',
        f'<rect x="{PAD}" y="{PAD}" width="{_f(map_w)}" height="{_f(map_h)}" fill="{SEA}"/>',
        f'<text x="{PAD}" y="{PAD - 30}" font-size="13" font-weight="bold">{_text(title)}</text>',
    ]

    def pxy(lon: float, lat: float) -> tuple[float, float]:
        return PAD + (lon - west) * coslat * scale, PAD + (north - lat) * scale

    out += _base(south, north, west, east, pxy)
    out.append(
        f'<rect x="{PAD}" y="{PAD}" width="{_f(map_w)}" height="{_f(map_h)}" fill="none" '
        'stroke="#555"/>'
    )
    out.append(
        f'<text x="{_f(PAD + map_w)}" y="{_f(PAD + map_h + 26)}" text-anchor="end" '
        'font-size="9" fill="#777">Natural Earth 1:50m</text>'
    )
    out += _graticule(south, north, west, east, xy, map_w, map_h)
    for i, shape in enumerate(shapes):
        out += _shape(
            shape, PALETTE[i % len(PALETTE)], _label(form, shape, lang), xy, coslat, scale
        )
    for i, shape in enumerate(shapes):
        y = legend_top + LEGEND_ROW * i
        out.append(
            f'<rect x="{PAD}" y="{_f(y - 10)}" width="12" height="12" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{PAD + 18}" y="{_f(y)}">{_text(_label(form, shape, lang))}</text>'
        )
    out.append("</svg>\n")
    return "\n".join(out)


def _path(points: list[tuple[float, float]], closed: bool) -> str:
    # Points closer than about a pixel to the last one kept add bytes, not detail.
    kept: list[tuple[float, float]] = []
    for x, y in points:
        if not kept or abs(x - kept[-1][0]) + abs(y - kept[-1][1]) >= 0.8:
            kept.append((x, y))
    if len(kept) < (3 if closed else 2):
        return ""
    head, *rest = kept
    d = f"M{_f(head[0])},{_f(head[1])}" + "".join(f"L{_f(x)},{_f(y)}" for x, y in rest)
    return d + ("Z" if closed else "")


def _base(south: float, north: float, west: float, east: float, pxy: Any) -> list[str]:
    """Land and borders, clipped to a box a little larger than the map (the picture is clipped
    to the map itself, so cut edges never show)."""
    m_lat, m_lon = (north - south) * 0.05, (east - west) * 0.05
    box = (south - m_lat, north + m_lat, west - m_lon, east + m_lon)
    land = [_path([pxy(lon, lat) for lon, lat in ring], True) for ring in basemap.land_rings(*box)]
    lines = [_path([pxy(lon, lat) for lon, lat in ln], False) for ln in basemap.border_lines(*box)]
    out = ['<g clip-path="url(#map)">']
    if any(land):
        out.append(
            f'<path d="{"".join(d for d in land if d)}" fill="{LAND}" fill-rule="evenodd" '
            'stroke="#7d8c99" stroke-width="0.7"/>'
        )
    if any(lines):
        out.append(
            f'<path d="{"".join(d for d in lines if d)}" fill="none" stroke="#9a7f6a" '
            'stroke-width="0.8" stroke-dasharray="4 2"/>'
        )
    out.append("</g>")
    return out


def _step(span: float) -> int:
    """The smallest round step giving at most 6 lines over `span` degrees."""
    return next((s for s in _STEPS_E6 if span * 1e6 / s <= 6), _STEPS_E6[-1])


def _graticule(
    south: float, north: float, west: float, east: float, xy: Any, map_w: float, map_h: float
) -> list[str]:
    out: list[str] = []
    # Lines at integer multiples of a round step, in micro-degrees so labels are exact; each
    # axis gets its own step so a wide, flat box still has several parallels.
    step = _step(north - south)
    lat = math.ceil(south * 1e6 / step) * step
    while lat <= north * 1e6:
        _, y = xy(lat, 0)
        out.append(
            f'<line x1="{PAD}" y1="{_f(y)}" x2="{_f(PAD + map_w)}" y2="{_f(y)}" '
            'stroke="#bbb" stroke-width="0.5"/>'
        )
        out.append(
            f'<text x="{PAD - 4}" y="{_f(y + 4)}" text-anchor="end" fill="#555">'
            f"{_text(_degree_label(lat, 'N', 'S'))}</text>"
        )
        lat += step
    step = _step(east - west)
    lon = math.ceil(west * 1e6 / step) * step
    while lon <= east * 1e6:
        x, _ = xy(0, lon)
        out.append(
            f'<line x1="{_f(x)}" y1="{PAD}" x2="{_f(x)}" y2="{_f(PAD + map_h)}" '
            'stroke="#bbb" stroke-width="0.5"/>'
        )
        out.append(
            f'<text x="{_f(x)}" y="{_f(PAD + map_h + 14)}" text-anchor="middle" '
            f'fill="#555">{_text(_degree_label(lon, "E", "W"))}</text>'
        )
        lon += step
    return out


def _shape(
    shape: geo.Shape, color: str, label: str, xy: Any, coslat: float, scale: float
) -> list[str]:
    pts = [xy(lat, lon) for lat, lon in shape.points]
    coords = " ".join(f"{_f(x)},{_f(y)}" for x, y in pts)
    out: list[str] = []
    if shape.kind == "polygon":
        out.append(
            f'<polygon points="{coords}" fill="{color}" fill-opacity="0.25" '
            f'stroke="{color}" stroke-width="2"/>'
        )
    elif shape.kind == "circle":
        dlat, dlon = _circle_extent(shape)
        out.append(
            f'<ellipse cx="{_f(pts[0][0])}" cy="{_f(pts[0][1])}" '
            f'rx="{_f(dlon * coslat * scale)}" ry="{_f(dlat * scale)}" fill="{color}" '
            f'fill-opacity="0.25" stroke="{color}" stroke-width="2"/>'
        )
    elif shape.kind == "route":
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" '
            'stroke-width="2" stroke-dasharray="6 3"/>'
        )
        out += [f'<circle cx="{_f(x)}" cy="{_f(y)}" r="3" fill="{color}"/>' for x, y in pts]
    else:
        out.append(
            f'<circle cx="{_f(pts[0][0])}" cy="{_f(pts[0][1])}" r="5" fill="{color}" '
            'stroke="#000" stroke-width="1"/>'
        )
    # The label sits at the mean of the vertices (the closing repeat of a ring excluded).
    body = (pts[:-1] if shape.kind == "polygon" else pts) or pts
    lx = sum(x for x, _ in body) / len(body)
    ly = sum(y for _, y in body) / len(body)
    out.append(
        f'<text x="{_f(lx)}" y="{_f(ly - 8)}" text-anchor="middle" fill="{color}" '
        f'font-weight="bold">{_text(label)}</text>'
    )
    return out
