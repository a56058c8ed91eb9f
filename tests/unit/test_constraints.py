"""constraints.txt (the exact versions `make` installs) against pyproject.toml's ranges, and our
ranges against those of the libraries that also depend on the same packages (aiogram's on
redis and aiohttp, aiogram-dialog's on aiogram): a range of ours wider than theirs lets pip
install a version they never promised to work with."""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
TOOLING = {"pip"}  # pinned for `make`, needed by no package
# Extras whose feature we use without asking for the extra: aiogram's RedisStorage (bot/app.py)
# is what aiogram's extra "redis" is for, so its range on redis binds ours.
USED_EXTRAS = {"aiogram": {"redis"}}


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]] + [
        Requirement(line) for line in project["optional-dependencies"]["dev"]
    ]


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pinned[canonicalize_name(name)] = Version(version)
    return pinned


def applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(
        requirement.marker.evaluate({**default_environment(), "extra": extra})
        for extra in extras or {""}
    )


def pinned_requirements() -> dict[str, list[Requirement]]:
    """What each pinned, installed-at-its-pin distribution requires on this Python, for the
    extras that were asked of it (the project's and the others')."""
    pinned = pins()
    extras: dict[str, set[str]] = {}
    todo = list(project_requirements())
    found: dict[str, list[Requirement]] = {}
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        asked = set(requirement.extras)
        if name in found and asked <= extras[name]:
            continue
        extras.setdefault(name, set()).update(asked)
        if name not in pinned or metadata.version(name) != str(pinned[name]):
            found[name] = []  # judged by its pin alone
            continue
        needs = [Requirement(line) for line in metadata.requires(name) or []]
        found[name] = [need for need in needs if applies(need, extras[name])]
        todo.extend(found[name])
    return found


def test_every_project_range_is_pinned_inside_it() -> None:
    pinned = pins()
    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in constraints.txt"
        assert pinned[name] in requirement.specifier, f"{name}=={pinned[name]}: {requirement}"


def test_the_pins_are_the_whole_closure_and_agree_with_each_other() -> None:
    pinned, closure = pins(), pinned_requirements()
    for name, needs in closure.items():
        for need in needs:
            other = canonicalize_name(need.name)
            assert other in pinned, f"{name} needs {need}, which is not pinned"
            assert need.specifier.contains(pinned[other], prereleases=True), (
                f"{name} needs {need}; pinned {other}=={pinned[other]}"
            )
    assert set(pinned) - set(closure) - TOOLING == set(), "pins nothing needs"


def bounds(specifier: SpecifierSet) -> tuple[Version | None, Version | None]:
    """The lowest version allowed (>=, >, ==, ~=) and the upper bound (<, <=), None when open."""
    low: Version | None = None
    high: Version | None = None
    for spec in specifier:
        version = Version(spec.version.removesuffix(".*"))
        if spec.operator in (">=", ">", "==", "~="):
            low = version if low is None else max(low, version)
        if spec.operator in ("<", "<="):
            high = version if high is None else min(high, version)
    return low, high


def test_our_ranges_lie_within_those_of_the_libraries_sharing_them() -> None:
    ours = {canonicalize_name(r.name): r for r in project_requirements()}
    checked = []
    for name in pins():
        try:
            needs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in needs:
            theirs = Requirement(line)
            other = canonicalize_name(theirs.name)
            if (
                other not in ours
                or other == name
                or not applies(theirs, USED_EXTRAS.get(name, set()))
            ):
                continue
            our_low, our_high = bounds(ours[other].specifier)
            their_low, their_high = bounds(theirs.specifier)
            where = f"ours {ours[other]} vs {name}'s {theirs}"
            if their_low is not None:
                assert our_low is not None and our_low >= their_low, where
            if their_high is not None:
                assert our_high is not None and our_high <= their_high, where
            checked.append((name, other))
    assert ("aiogram", "redis") in checked and ("aiogram-dialog", "aiogram") in checked


@pytest.mark.parametrize(
    ("ours", "theirs", "agree"),
    [("redis>=6.2,<8", "redis<8,>=6.2.0", True), ("redis>=5.2,<9", "redis<8,>=6.2.0", False)],
)
def test_bounds_tell_a_wider_range(ours: str, theirs: str, agree: bool) -> None:
    (our_low, our_high), (their_low, their_high) = (
        bounds(Requirement(ours).specifier),
        bounds(Requirement(theirs).specifier),
    )
    assert (our_low >= their_low and our_high <= their_high) is agree  # type: ignore[operator]
