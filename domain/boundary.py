"""The city's boundary: one or more areas (Moscow is three — the old city within the MKAD,
Zelenograd and New Moscow), each an outer ring with optional holes. Pure Python, WGS84."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from domain.reports import Point, distance_m
from domain.reports import inside as in_ring  # ray casting over one ring

SUGGEST_WITHIN_M = 5_000  # outside the city: an address this close is offered instead


@dataclass(frozen=True, slots=True)
class Area:
    """One polygon: the outer ring and the holes cut out of it (rings of points, either closed
    or not, in any orientation)."""

    outer: tuple[Point, ...]
    holes: tuple[tuple[Point, ...], ...] = ()

    def contains(self, point: Point) -> bool:
        return in_ring(point, self.outer) and not any(in_ring(point, h) for h in self.holes)


@dataclass(frozen=True, slots=True)
class Boundary:
    """The city: a point belongs to it when it lies in any of its areas."""

    areas: tuple[Area, ...]

    def contains(self, point: Point) -> bool:
        return any(area.contains(point) for area in self.areas)

    @classmethod
    def of_ring(cls, ring: Sequence[Point]) -> Boundary:
        """A one-ring city (the platform's older answer, a plain Polygon)."""
        return cls((Area(tuple(ring)),))


def _ring(positions: object) -> tuple[Point, ...]:
    if not isinstance(positions, list):
        raise ValueError("a ring is a list of positions")
    points = []
    for position in positions:
        if not (isinstance(position, list) and len(position) >= 2):
            raise ValueError("a position is [long, lat]")
        long, lat = position[0], position[1]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (long, lat)):
            raise ValueError("a position's coordinates are numbers")
        points.append(Point(lat=float(lat), long=float(long)))
    if len(points) < 3:
        raise ValueError("a ring has at least three positions")
    return tuple(points)


def _area(rings: object) -> Area:
    if not (isinstance(rings, list) and rings):
        raise ValueError("a polygon is a non-empty list of rings")
    outer, *holes = (_ring(r) for r in rings)
    return Area(outer, tuple(holes))


def from_geojson(body: object) -> Boundary:
    """A GeoJSON (RFC 7946) Polygon or MultiPolygon of `[long, lat]` positions → Boundary.
    The first ring of a polygon is its outline, the others are holes. ValueError otherwise."""
    if not isinstance(body, dict):
        raise ValueError("the boundary is a GeoJSON object")
    kind, coordinates = body.get("type"), body.get("coordinates")
    if kind == "Polygon":
        return Boundary((_area(coordinates),))
    if kind == "MultiPolygon":
        if not (isinstance(coordinates, list) and coordinates):
            raise ValueError("a MultiPolygon has at least one polygon")
        return Boundary(tuple(_area(polygon) for polygon in coordinates))
    raise ValueError(f"unsupported boundary type {kind!r}")


def nearest_inside(
    point: Point,
    candidates: Iterable[tuple[str, Point]],
    boundary: Boundary,
    within_m: float = SUGGEST_WITHIN_M,
) -> tuple[str, Point] | None:
    """The closest (address, point) inside the city and within `within_m` of `point`."""
    found = [
        (distance_m(point, p), address, p)
        for address, p in candidates
        if boundary.contains(p) and distance_m(point, p) <= within_m
    ]
    if not found:
        return None
    _d, address, p = min(found, key=lambda item: (item[0], item[1]))
    return address, p
