"""A small Moscow gazetteer for the sandbox: address search, reverse lookup, the city boundary.

Fictional-but-plausible data: real street names with approximate coordinates (WGS84) and
postcodes. Everything here is immutable and shared by every sandbox app.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_000.0
REVERSE_RADIUS_M = 300.0
SEARCH_LIMIT = 10


@dataclass(frozen=True, slots=True)
class Place:
    id: str  # the jurisdiction's address id (Open311 `address_id`)
    address: str
    lat: float
    long: float
    zipcode: str


# (address, lat, long, zipcode); ids are MSK-0001... in this order.
_PLACES: tuple[tuple[str, float, float, str], ...] = (
    ("Тверская ул., 7", 55.7577, 37.6107, "125009"),
    ("Тверская ул., 9", 55.7586, 37.6104, "125009"),
    ("Тверская ул., 13", 55.7614, 37.6097, "125032"),
    ("ул. Арбат, 10", 55.7513, 37.5970, "119002"),
    ("ул. Новый Арбат, 15", 55.7526, 37.5872, "121099"),
    ("Ленинский пр-т, 30", 55.7081, 37.5857, "119334"),
    ("Кутузовский пр-т, 26", 55.7400, 37.5380, "121165"),
    ("Ленинградский пр-т, 37", 55.7905, 37.5353, "125167"),
    ("пр-т Мира, 119", 55.8263, 37.6377, "129223"),
    ("Профсоюзная ул., 56", 55.6720, 37.5540, "117393"),
    ("Варшавское ш., 1", 55.7006, 37.6225, "117105"),
    ("ул. Большая Ордынка, 21", 55.7397, 37.6254, "119017"),
    ("ул. Покровка, 17", 55.7590, 37.6472, "101000"),
    ("ул. Мясницкая, 20", 55.7616, 37.6366, "101000"),
    ("Садовая-Кудринская ул., 11", 55.7632, 37.5878, "123242"),
    ("ул. Маросейка, 9", 55.7574, 37.6350, "101000"),
    ("Комсомольский пр-т, 24", 55.7282, 37.5847, "119146"),
    ("ул. Вавилова, 19", 55.7005, 37.5803, "119334"),
    ("Нахимовский пр-т, 36", 55.6805, 37.5820, "117218"),
    ("ул. Бутлерова, 17", 55.6430, 37.5270, "117342"),
    ("Каширское ш., 23", 55.6550, 37.6470, "115478"),
    ("Волгоградский пр-т, 42", 55.7150, 37.7430, "109316"),
    ("Щёлковское ш., 2", 55.8105, 37.7985, "105122"),
    ("Измайловский пр-т, 73", 55.7885, 37.7905, "105077"),
    ("Мичуринский пр-т, 27", 55.6960, 37.5070, "119607"),
    ("ул. Народного Ополчения, 40", 55.7800, 37.4790, "123154"),
    ("Дмитровское ш., 89", 55.8650, 37.5470, "127238"),
    ("Алтуфьевское ш., 30", 55.8670, 37.5920, "127106"),
    ("Ярославская ул., 8", 55.8190, 37.6630, "129164"),
    ("ул. Гиляровского, 39", 55.7815, 37.6320, "129110"),
    ("Бауманская ул., 58", 55.7720, 37.6790, "105005"),
    ("Рязанский пр-т, 30", 55.7260, 37.7590, "109428"),
    ("Пятницкая ул., 25", 55.7420, 37.6280, "115035"),
    ("Зубовский б-р, 4", 55.7355, 37.5880, "119021"),
    ("Смольная ул., 24", 55.8600, 37.4880, "125445"),
    ("Хорошёвское ш., 38", 55.7750, 37.5340, "123007"),
    ("Севастопольский пр-т, 28", 55.6640, 37.5820, "117209"),
    ("Люблинская ул., 100", 55.6800, 37.7400, "109382"),
    ("Новослободская ул., 10", 55.7820, 37.6010, "127055"),
    ("Чистопрудный б-р, 12", 55.7610, 37.6440, "101000"),
    ("ул. Сретенка, 26", 55.7700, 37.6320, "107045"),
    ("ул. Дыбенко, 7", 55.8770, 37.4800, "125475"),
    ("Осташковская ул., 9", 55.8830, 37.6830, "129345"),
    ("г. Зеленоград, корп. 1106", 55.9829, 37.1800, "124482"),
    ("г. Троицк, Октябрьский пр-т, 7", 55.4846, 37.3050, "108840"),
)

PLACES: tuple[Place, ...] = tuple(
    Place(f"MSK-{index:04d}", address, lat, long, zipcode)
    for index, (address, lat, long, zipcode) in enumerate(_PLACES, start=1)
)

# The city's boundary, simplified but honest: a GeoJSON MultiPolygon of [long, lat] positions,
# each polygon one closed, counter-clockwise outer ring (RFC 7946), no holes. Shared edges are
# the MKAD's south-western stretch. Left out for brevity: the districts just beyond the MKAD
# (Mitino, Kurkino, Nekrasovka, Molzhaninovsky...), Mytishchi and Khimki (Moscow Oblast) stay
# outside.
OLD_MOSCOW: tuple[tuple[float, float], ...] = (  # the MKAD, kilometre posts rounded
    (37.5870, 55.9115),  # Altufyevskoe sh.
    (37.5430, 55.9090),  # Dmitrovskoe sh.
    (37.4450, 55.8820),  # Leningradskoe sh.
    (37.3930, 55.8320),  # Volokolamskoe sh.
    (37.3690, 55.7700),  # the westernmost point
    (37.3880, 55.7180),  # Mozhayskoe sh.
    (37.4100, 55.6800),  # Michurinsky pr.
    (37.4580, 55.6370),  # Leninsky pr.
    (37.4960, 55.6137),  # Profsoyuznaya ul.
    (37.5965, 55.5735),  # Varshavskoe sh., the southernmost point
    (37.7290, 55.5920),  # Kashirskoe sh.
    (37.8340, 55.7080),  # Ryazansky pr.
    (37.8430, 55.7760),  # sh. Entuziastov
    (37.8380, 55.8110),  # Shchyolkovskoe sh.
    (37.7000, 55.8930),  # Yaroslavskoe sh.
    (37.6500, 55.9050),  # Ostashkovskoe sh.
    (37.5870, 55.9115),
)
ZELENOGRAD: tuple[tuple[float, float], ...] = (
    (37.1950, 56.0300),
    (37.1350, 56.0050),
    (37.1350, 55.9650),
    (37.1900, 55.9550),
    (37.2600, 55.9750),
    (37.2500, 56.0150),
    (37.1950, 56.0300),
)
NEW_MOSCOW: tuple[tuple[float, float], ...] = (  # Novomoskovsky and Troitsky okrugs
    (37.4100, 55.6800),  # meets the MKAD at Michurinsky pr.
    (37.3300, 55.6650),  # Novo-Peredelkino
    (37.2300, 55.6300),  # north of Vnukovo
    (37.1000, 55.5300),
    (36.9500, 55.4300),
    (36.8000, 55.2500),
    (36.8200, 55.1400),  # the south-western tip, by the Kaluga Oblast
    (37.0000, 55.1800),
    (37.2000, 55.3300),
    (37.4000, 55.4000),
    (37.5600, 55.4500),
    (37.6300, 55.5000),  # Shcherbinka
    (37.6100, 55.5500),
    (37.5965, 55.5735),  # back along the MKAD
    (37.4960, 55.6137),
    (37.4580, 55.6370),
    (37.4100, 55.6800),
)
AREAS: tuple[tuple[tuple[float, float], ...], ...] = (OLD_MOSCOW, ZELENOGRAD, NEW_MOSCOW)
BOUNDARY = OLD_MOSCOW  # the single ring older clients read as a Polygon

# Words that only say what kind of street or building it is (after splitting on punctuation).
_DESIGNATORS = frozenset(
    {
        "г",
        "город",
        "москва",
        "россия",
        "ул",
        "улица",
        "д",
        "дом",
        "пр",
        "т",
        "просп",
        "проспект",
        "ш",
        "шоссе",
        "б",
        "р",
        "бул",
        "бульвар",
        "пер",
        "переулок",
        "пл",
        "площадь",
        "наб",
        "набережная",
    }
)
_WORD = re.compile(r"[0-9а-яa-z]+")


def normalize(text: str) -> tuple[str, ...]:
    """The meaningful words of an address: lower case, ё as е, no designators or punctuation."""
    words = _WORD.findall(text.lower().replace("ё", "е"))
    return tuple(word for word in words if word not in _DESIGNATORS)


def _matches(query: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """Every query word is a word of the address (numbers exactly, names by prefix)."""
    for wanted in query:
        if wanted.isdigit():
            found = wanted in words
        else:
            found = any(word.startswith(wanted) for word in words)
        if not found:
            return False
    return True


def search(query: str) -> list[Place]:
    """Places matching `query` forgivingly (case, «ул.»/«улица», «д.», commas), exact first."""
    wanted = normalize(query)
    if not wanted:
        return []
    found = [place for place in PLACES if _matches(wanted, normalize(place.address))]
    found.sort(key=lambda place: (normalize(place.address) != wanted, place.address))
    return found[:SEARCH_LIMIT]


def exact(query: str) -> Place | None:
    """The place whose address is `query` up to the forgiving normalisation, if any."""
    wanted = normalize(query)
    return next((place for place in PLACES if normalize(place.address) == wanted), None)


def by_id(address_id: str) -> Place | None:
    return next((place for place in PLACES if place.id == address_id), None)


def distance_m(lat1: float, long1: float, lat2: float, long2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(long2 - long1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def nearest(lat: float, long: float, within_m: float = REVERSE_RADIUS_M) -> Place | None:
    """The closest place no farther than `within_m`, if any."""
    best = min(PLACES, key=lambda place: distance_m(lat, long, place.lat, place.long))
    return best if distance_m(lat, long, best.lat, best.long) <= within_m else None


def _in_ring(lat: float, long: float, ring: tuple[tuple[float, float], ...]) -> bool:
    """Ray casting over one closed ring of (long, lat)."""
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > lat) != (y2 > lat):
            crossing = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if long < crossing:
                inside = not inside
    return inside


def inside_city(lat: float, long: float) -> bool:
    """Whether the point lies inside any area of the city (`AREAS`)."""
    return any(_in_ring(lat, long, ring) for ring in AREAS)
