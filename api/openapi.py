"""The OpenAPI document as the API behaves: every error is `application/problem+json`.

FastAPI documents error models as `application/json`, adds its own 422 schema (which this API
never sends) and knows nothing of what middleware and dependencies answer. This module rewrites
the generated document once, from the routes themselves:

- every operation with a body documents 400 (not JSON at all);
- every operation documents 413 (body over the limit) and 422 (bad input, NUL anywhere), both
  answered before any handler runs (`api.request_guard`);
- every operation that takes an API key documents 401; every one with a path parameter, 404;
- no string or object key anywhere may hold NUL (the guard refuses it);
- every 4xx/5xx response is `application/problem+json` with the `Problem` schema (or the
  subclass the route declared, like the readiness check's).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from api.deps import require_api_key
from api.problems import MEDIA_TYPE, Problem
from journeys.domain.text import JSON_VALUE_SCHEMA

NO_NUL_PATTERN = r"^[^\u0000]*$"
_ANY_JSON_REF = "#/components/schemas/AnyJson"
_ANY_JSON = {
    "description": "Any JSON value without NUL characters.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL_PATTERN},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": _ANY_JSON_REF}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL_PATTERN},
            "additionalProperties": {"$ref": _ANY_JSON_REF},
        },
    ],
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No API key, or not a valid one",
    404: "No such resource",
    409: "Conflicts with the resource's state",
    413: "Request body or a field too large",
    422: "Invalid input; `errors` names each bad field",
}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def _needs_key(dependant: Dependant) -> bool:
    return any(dep.call is require_api_key or _needs_key(dep) for dep in dependant.dependencies)


def _problem_content(response: dict[str, Any]) -> dict[str, Any]:
    content = response.get("content", {})
    schema = content.get(MEDIA_TYPE, {}).get("schema")
    if schema is None:
        declared = content.get("application/json", {}).get("schema")
        keep = declared is not None and declared.get("$ref") not in (None, _FASTAPI_422)
        schema = declared if keep else _PROBLEM_REF
    return {MEDIA_TYPE: {"schema": schema}}


def _keyed_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(path template, method) of every operation that takes an API key."""
    keyed = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and _needs_key(route.dependant):
            keyed |= {(context.path_format or route.path, m.lower()) for m in route.methods}
    return keyed


def _no_nul(schema: Any) -> None:
    """Says in the schema what `api.request_guard` enforces: no NUL in any string or key.

    Strings already constrained by a pattern, a format or an enum are left as they are.
    """
    if isinstance(schema, list):
        for item in schema:
            _no_nul(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not schema.keys() & {"pattern", "format", "enum"}:
        schema["pattern"] = NO_NUL_PATTERN
    if schema.get("type") == "object" or "properties" in schema:
        schema.setdefault("propertyNames", {"pattern": NO_NUL_PATTERN})
        if schema.get("additionalProperties", True) in (True, {}):
            # Extra members are ignored, but NUL in them is still refused.
            schema["additionalProperties"] = {"$ref": _ANY_JSON_REF}
    for key, value in schema.items():
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            _each_schema(value)  # a mapping of names to schemas, not a schema itself
        elif key not in _NOT_SCHEMAS:
            _no_nul(value)


def _each_schema(named: dict[str, Any]) -> None:
    for schema in named.values():
        _no_nul(schema)


# Keywords whose value maps names to schemas, and keywords whose value is no schema at all.
_NAMED_SCHEMAS = {"properties", "patternProperties", "$defs", "definitions", "content"}
_NOT_SCHEMAS = {"propertyNames", "example", "examples", "default", "const", "enum", "required"}


def _rewrite(document: dict[str, Any], keyed: set[tuple[str, str]]) -> dict[str, Any]:
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = {413, 422}
            if "requestBody" in operation:
                codes.add(400)
            if (path, method) in keyed:
                codes.add(401)
            if "{" in path:
                codes.add(404)
            for code in codes:
                responses.setdefault(str(code), {"description": _DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    if response.get("description") in (None, "Validation Error"):
                        response["description"] = _DESCRIPTIONS.get(int(code), "Error")
                    response["content"] = _problem_content(response)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    definitions = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(definitions.pop("$defs", {}))
    schemas["Problem"] = definitions
    schemas["JsonValue"] = copy.deepcopy(JSON_VALUE_SCHEMA)
    _each_schema(schemas)
    schemas["AnyJson"] = copy.deepcopy(_ANY_JSON)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            _no_nul(operation.get("parameters", []))
            _no_nul(operation.get("requestBody", {}))
    return document


def install(app: FastAPI) -> None:
    """Serves the rewritten document at `/openapi.json` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _rewrite(document, _keyed_operations(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
