"""Build the offline base map that notice maps are drawn on (src/parley/domain/forms/mapdata/).

The source is Natural Earth 1:50m (public domain) as the npm package `world-atlas` (TopoJSON,
ISC licence), fetched with npm's own client and never at run time:

    cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python tools/basemap.py /tmp/package/countries-50m.json

Output format (`world-50m.bin`, zlib-compressed; read by parley.domain.forms.basemap):
    varint n, then n bytes of JSON header {"source", "scale": [sx, sy], "translate": [tx, ty],
        "arcs": A, "rings": R, "borders": B}    (scale/translate as decimal strings)
    A arcs:    varint count, then count × (zigzag dx, zigzag dy): TopoJSON's quantized,
               delta-encoded positions as they are in the source
    R rings:   the land's polygon rings (coastlines; lakes as holes): varint count, then count ×
               zigzag arc references (TopoJSON's: ~i is arc i reversed)
    B borders: arcs two different countries share (land borders): varint count, arc indices
Everything is integers, so the file is byte-for-byte reproducible from the same source.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src/parley/domain/forms/mapdata/world-50m.bin"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _rings(geom: dict[str, Any]) -> list[list[int]]:
    if geom["type"] == "Polygon":
        return list(geom["arcs"])
    if geom["type"] == "MultiPolygon":
        return [ring for poly in geom["arcs"] for ring in poly]
    return []


def build(topo: dict[str, Any]) -> bytes:
    arcs: list[list[list[int]]] = topo["arcs"]
    land = [r for g in topo["objects"]["land"]["geometries"] for r in _rings(g)]
    users: dict[int, set[int]] = defaultdict(set)
    for n, country in enumerate(topo["objects"]["countries"]["geometries"]):
        for ring in _rings(country):
            for ref in ring:
                users[ref if ref >= 0 else ~ref].add(n)
    borders = sorted(i for i, who in users.items() if len(who) > 1)
    header = {
        "source": "Natural Earth 1:50m via world-atlas 2.0.2 (countries-50m.json)",
        "scale": [repr(v) for v in topo["transform"]["scale"]],
        "translate": [repr(v) for v in topo["transform"]["translate"]],
        "arcs": len(arcs),
        "rings": len(land),
        "borders": len(borders),
    }
    head = json.dumps(header, sort_keys=True).encode()
    out = bytearray(varint(len(head)) + head)
    for arc in arcs:
        out += varint(len(arc))
        for dx, dy in arc:
            out += varint(zigzag(dx)) + varint(zigzag(dy))
    for ring in land:
        out += varint(len(ring))
        for ref in ring:
            out += varint(zigzag(ref))
    out += b"".join(varint(i) for i in [len(borders), *borders])
    return zlib.compress(bytes(out), 9)


def main() -> None:
    source = Path(sys.argv[1])
    data = build(json.loads(source.read_text()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(f"{OUT}: {len(data)} bytes")


if __name__ == "__main__":
    main()
