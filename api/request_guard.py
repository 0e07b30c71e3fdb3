"""Refuses what must never reach a handler: oversized bodies and NUL characters.

The body is read here, with a cap, before FastAPI parses it: a `Content-Length` above the limit
is refused unread, and a body that turns out larger than announced (or streams without a
length) is refused as soon as the cap is passed, so no request can make the process buffer more
than the limit. A query parameter given twice is refused (each is a single value). Postgres can
store no NUL in `text` or `jsonb`, so a NUL anywhere in the path,
the query or a JSON body is refused with a 422 naming where it was, whatever the route.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import MEDIA_TYPE, FieldError, Problem, title_for

# Routes whose body is streamed (bulk imports): they bound what they read themselves.
STREAMED_SUFFIX = "/contacts:import"


def _nul_path(value: Any, path: str) -> str | None:
    """Where the first NUL in a JSON value is (keys included), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return inner.replace("\x00", "\\u0000")
            found = _nul_path(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _query_problem(query_string: bytes) -> tuple[str, str] | None:
    """(field, message) of a NUL or a repeated parameter in the query string, or None.

    Every query parameter of the API is a single value: given twice, one would be silently
    dropped, so the request is refused instead.
    """
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None
    seen = set()
    for name, value in pairs:
        field = f"query.{name.replace(chr(0), '')}"
        if "\x00" in name or "\x00" in value:
            return field, "NUL characters are not allowed"
        if name in seen:
            return field, "given more than once"
        seen.add(name)
    return None


class RequestGuard:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streaming responses).

    Args:
        app: The application.
        max_body_bytes: Largest body read; larger ones get 413.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", ""):
            await _problem(scope, send, 422, "the path holds a NUL character", "path")
            return
        found = _query_problem(scope.get("query_string", b""))
        if found:
            field, message = found
            await _problem(scope, send, 422, f"{field}: {message}", field, message)
            return
        if scope.get("path", "").endswith(STREAMED_SUFFIX):
            # A bulk import is read row by row as it arrives, never buffered whole; its
            # handler bounds each row and the row count instead.
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app sees an empty body and the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\\u0000" in body and _is_json(scope):
            where = _body_nul(body)
            if where is not None:
                field = where or "body"
                await _problem(scope, send, 422, f"{field}: NUL characters are not allowed", field)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _problem(
            scope,
            send,
            413,
            f"the request body is larger than {self.max_body_bytes} bytes",
            "body",
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # FastAPI parses a body without content type as JSON too


def _body_nul(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON: FastAPI answers 422 for it
    return _nul_path(document, "")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _problem(
    scope: Scope, send: Send, status: int, detail: str, field: str, message: str | None = None
) -> None:
    message = message or ("too large" if status == 413 else "NUL characters are not allowed")
    problem = Problem(
        title=title_for(status),
        status=status,
        detail=detail,
        instance=scope.get("path", ""),
        errors=[FieldError(field=field, message=message)],
    )
    body = json.dumps(problem.model_dump(mode="json")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
