"""The city contract (`city/openapi.yaml`) as a test helper.

    validate("/api/v1/bills", "GET", 200, body)   # AssertionError with a readable message
    declared_operations()                          # {("GET", "/api/v1/bills"), ...}

Response schemas are validated with JSON Schema 2020-12 (what OpenAPI 3.1 uses), with every
`$ref` into the document resolvable, and `format` checked where jsonschema can (e.g. dates).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[2] / "city" / "openapi.yaml"
SPEC_URI = "urn:city:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@cache
def spec() -> dict[str, Any]:
    """The parsed contract (loaded once)."""
    with SPEC_PATH.open(encoding="utf-8") as file:
        loaded: dict[str, Any] = yaml.safe_load(file)
    return loaded


@cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


def declared_operations() -> set[tuple[str, str]]:
    """Every (METHOD, path template) the contract declares."""
    return {
        (method.upper(), path)
        for path, item in spec()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def validate(path_template: str, method: str, status: int, body: Any) -> None:
    """Assert that `body` is what the contract declares for this path, method and status.

    JSON bodies are checked against the `application/json` schema; for responses with another
    media type (HTML pages) pass the text; for responses without content (redirects) pass None.
    """
    where = f"{method.upper()} {path_template} → {status}"
    responses = _operation(path_template, method)["responses"]
    key = _response_key(responses, status)
    if key is None:
        declared = ", ".join(sorted(str(code) for code in responses))
        raise AssertionError(f"{where}: status not declared (declared: {declared})")
    content = responses[key].get("content")
    if not content:
        assert body is None, f"{where}: the contract declares no body, got {body!r}"
        return
    media_type = "application/json" if "application/json" in content else next(iter(content))
    pointer = "/".join(
        _escape(part) for part in ("paths", path_template, method.lower(), "responses", key)
    )
    _check(f"#/{pointer}/content/{_escape(media_type)}/schema", body, where)


def validate_schema(name: str, body: Any) -> None:
    """Assert that `body` matches `#/components/schemas/<name>`."""
    assert name in spec()["components"]["schemas"], f"no schema {name!r} in the contract"
    _check(f"#/components/schemas/{_escape(name)}", body, f"schema {name}")


def _operation(path_template: str, method: str) -> dict[str, Any]:
    item = spec()["paths"].get(path_template)
    if item is None:
        raise AssertionError(f"path {path_template!r} is not declared in the contract")
    operation = item.get(method.lower())
    if operation is None:
        raise AssertionError(f"{method.upper()} {path_template} is not declared in the contract")
    return operation  # type: ignore[no-any-return]


def _response_key(responses: dict[Any, Any], status: int) -> str | None:
    """OpenAPI precedence: the exact code, then the range ('4XX'), then 'default'."""
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return key
    return None


def _check(pointer: str, body: Any, where: str) -> None:
    validator = Draft202012Validator(
        {"$ref": SPEC_URI + quote(pointer, safe="#/~")},
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
    if errors:
        details = "\n".join(
            f"  at {_location(error.absolute_path)}: {error.message}" for error in errors[:10]
        )
        raise AssertionError(f"{where}: the body does not match the contract\n{details}")


def _escape(part: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return part.replace("~", "~0").replace("/", "~1")


def _location(path: Any) -> str:
    return "/" + "/".join(str(part) for part in path) if path else "(the body)"
