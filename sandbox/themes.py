"""«Наш город» report themes (Open311 services), generated from the compact tables below.

Each group table lists one theme a line: `name | keywords | flags`, where the flags are
`P` (a photo is required), `W` (winter only) and `S` (summer only). A theme's `service_code` is
the group's prefix and its line number (`road-01`). Themes with attributes (see `_ATTRIBUTES`)
have `metadata: true`. Everything here is immutable and shared by every sandbox app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sandbox.theme_tables import ATTRIBUTE_TABLE, GROUP_TABLES


@dataclass(frozen=True, slots=True)
class Season:
    """A yearly window of Moscow dates, `MM-DD` to `MM-DD` inclusive (may wrap the new year)."""

    start: str
    end: str

    def contains(self, day: date) -> bool:
        today = f"{day.month:02d}-{day.day:02d}"
        if self.start <= self.end:
            return self.start <= today <= self.end
        return today >= self.start or today <= self.end

    def to_json(self) -> dict[str, str]:
        return {"from": self.start, "to": self.end}

    def describe(self) -> str:
        """«с 01.11 по 15.04»."""
        return f"с {_dotted(self.start)} по {_dotted(self.end)}"


WINTER = Season("11-01", "04-15")
SUMMER = Season("05-01", "09-30")


@dataclass(frozen=True, slots=True)
class AttributeValue:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Attribute:
    """An Open311 service-definition attribute."""

    code: str
    datatype: str  # string, number, datetime, text, singlevaluelist, multivaluelist
    required: bool
    description: str
    datatype_description: str | None = None
    values: tuple[AttributeValue, ...] = ()
    variable: bool = True  # False: information for the resident, no input

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(value.key for value in self.values)


@dataclass(frozen=True, slots=True)
class Theme:
    code: str
    name: str
    group: str
    agency: str
    keywords: tuple[str, ...]
    photo_required: bool
    season: Season | None
    attributes: tuple[Attribute, ...]

    @property
    def metadata(self) -> bool:
        return bool(self.attributes)

    @property
    def description(self) -> str:
        return f"«{self.name}»: сообщение в раздел «{self.group}». Отвечает {self.agency}."


def _dotted(month_day: str) -> str:
    month, day = month_day.split("-")
    return f"{day}.{month}"


def _attributes(theme_name: str) -> tuple[Attribute, ...]:
    rows = ATTRIBUTE_TABLE.get(theme_name, ())
    return tuple(
        Attribute(
            code=row.code,
            datatype=row.datatype,
            required=row.required,
            description=row.description,
            datatype_description=row.hint,
            values=tuple(AttributeValue(key, name) for key, name in row.values),
            variable=row.variable,
        )
        for row in rows
    )


def _season(flags: str) -> Season | None:
    if "W" in flags:
        return WINTER
    if "S" in flags:
        return SUMMER
    return None


def _build() -> tuple[Theme, ...]:
    themes: list[Theme] = []
    for table in GROUP_TABLES:
        lines = [line.strip() for line in table.rows.strip().splitlines() if line.strip()]
        for number, line in enumerate(lines, start=1):
            name, keywords, flags = (part.strip() for part in line.split("|"))
            themes.append(
                Theme(
                    code=f"{table.prefix}-{number:02d}",
                    name=name,
                    group=table.group,
                    agency=table.agency,
                    keywords=tuple(word.strip() for word in keywords.split(",")),
                    photo_required="P" in flags,
                    season=_season(flags),
                    attributes=_attributes(name),
                )
            )
    return tuple(themes)


THEMES: tuple[Theme, ...] = _build()
_BY_CODE = {theme.code: theme for theme in THEMES}


def theme_by_code(code: str) -> Theme | None:
    return _BY_CODE.get(code)


def theme_by_name(name: str) -> Theme:
    """The theme with this name (KeyError when none: for seeds and tests)."""
    for theme in THEMES:
        if theme.name == name:
            return theme
    raise KeyError(name)
