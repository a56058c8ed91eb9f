"""The city's boundary: Moscow as three areas (the old city, Zelenograd, New Moscow), holes,
the older one-ring Polygon, and the nearest address inside the city offered from outside."""

from __future__ import annotations

import pytest

from domain.boundary import Area, Boundary, from_geojson, nearest_inside
from domain.reports import Point
from sandbox import gazetteer


def sandbox_boundary() -> Boundary:
    polygons = [[[list(position) for position in ring]] for ring in gazetteer.AREAS]
    return from_geojson({"type": "MultiPolygon", "coordinates": polygons})


MOSCOW = sandbox_boundary()

IN_MOSCOW = {
    "Red Square": (55.7539, 37.6208),
    "Zelenograd": (55.9825, 37.1814),
    "Troitsk": (55.4844, 37.3072),
    "Vnukovo": (55.6044, 37.2872),
    "the MKAD's inner side at Altufyevo": (55.9050, 37.5870),
    "the MKAD's inner side at Entuziastov": (55.7760, 37.8350),
}
OUTSIDE = {
    "Mytishchi": (55.9116, 37.7308),
    "Khimki": (55.8970, 37.4297),
    "Odintsovo": (55.6780, 37.2780),
    "Balashikha": (55.7960, 37.9380),
    "Saint Petersburg": (59.9386, 30.3141),
}


@pytest.mark.parametrize("name", IN_MOSCOW)
def test_moscow_accepts(name: str) -> None:
    assert MOSCOW.contains(Point(*IN_MOSCOW[name])), name


@pytest.mark.parametrize("name", OUTSIDE)
def test_moscow_refuses(name: str) -> None:
    assert not MOSCOW.contains(Point(*OUTSIDE[name])), name


def test_every_gazetteer_address_is_in_the_city() -> None:
    assert all(MOSCOW.contains(Point(p.lat, p.long)) for p in gazetteer.PLACES)


def square(south: float, west: float, north: float, east: float) -> list[list[float]]:
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


def test_holes_are_cut_out() -> None:
    boundary = from_geojson(
        {"type": "Polygon", "coordinates": [square(0, 0, 10, 10), square(4, 4, 6, 6)]}
    )
    assert boundary.contains(Point(2, 2))
    assert not boundary.contains(Point(5, 5))  # in the hole
    assert not boundary.contains(Point(11, 5))


def test_the_older_polygon_is_still_read() -> None:
    ring = [[long, lat] for long, lat in gazetteer.OLD_MOSCOW]
    boundary = from_geojson({"type": "Polygon", "coordinates": [ring]})
    assert len(boundary.areas) == 1
    assert boundary.contains(Point(55.7539, 37.6208))
    assert not boundary.contains(Point(55.9825, 37.1814))  # one ring: no Zelenograd
    assert Boundary.of_ring(boundary.areas[0].outer) == boundary


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"type": "Point", "coordinates": [37.6, 55.7]},
        {"type": "Polygon", "coordinates": []},
        {"type": "Polygon", "coordinates": [[[37.6, 55.7], [37.7, 55.8]]]},
        {"type": "Polygon", "coordinates": [[[37.6, "55.7"], [37.7, 55.8], [37.5, 55.8]]]},
        {"type": "MultiPolygon", "coordinates": []},
        {"type": "MultiPolygon", "coordinates": [[[[True, 55.7], [37.7, 55.8], [37.5, 55.8]]]]},
    ],
)
def test_a_malformed_boundary_is_a_value_error(body: object) -> None:
    with pytest.raises(ValueError):
        from_geojson(body)


def test_the_nearest_address_inside_within_5_km() -> None:
    khimki = Point(55.8970, 37.4297)
    candidates = [(p.address, Point(p.lat, p.long)) for p in gazetteer.PLACES]
    found = nearest_inside(khimki, candidates, MOSCOW)
    assert found is not None and found[0] == "ул. Дыбенко, 7"
    assert nearest_inside(Point(59.9386, 30.3141), candidates, MOSCOW) is None  # too far
    outside = [("Химки, ул. Ленина, 1", Point(55.8970, 37.4300))]
    assert nearest_inside(khimki, outside, MOSCOW) is None  # close, but not in the city


def test_an_area_without_holes() -> None:
    area = Area((Point(0, 0), Point(0, 1), Point(1, 1), Point(1, 0)))
    assert area.contains(Point(0.5, 0.5)) and not area.contains(Point(1.5, 0.5))
