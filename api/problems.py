"""RFC 9457 problem details: every error the API returns, in one shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Invalid Input",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def title_for(status: int) -> str:
    """The standard title of a status code."""
    return _TITLES.get(status, "Error")


class FieldError(BaseModel):
    field: str
    message: str
    code: str | None = None


class Problem(BaseModel):
    """The body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] = []


class ProblemError(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type: str = "about:blank",
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or title_for(status)
        self.type = type
        self.errors = errors or []
        self.headers = headers


def field_path(loc: tuple[Any, ...] | list[Any], tags: frozenset[str] = frozenset()) -> str:
    """Turns a pydantic location into `steps[1].duration`.

    Args:
        loc: The location, without its leading `body`/`query`/`path` part.
        tags: Discriminator values; pydantic puts the union member's tag in the location,
            which the author never wrote, so it is dropped.
    """
    path = ""
    previous: Any = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif (part in tags and isinstance(previous, int)) or (
            isinstance(part, str) and part.startswith("function-")
        ):
            pass
        else:
            path += f".{part}" if path else str(part)
        previous = part
    return path or "body"


def validation_errors(errors: list[dict[str, Any]], tags: frozenset[str]) -> list[FieldError]:
    """FieldErrors from pydantic's error list (request or model validation)."""
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header"):
            where, loc = loc[0], loc[1:]
        else:
            where = "body"
        path = field_path(loc, tags)
        if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            path += ".type"
        if where != "body":
            path = f"{where}.{path}"
        message = err.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        out.append(FieldError(field=path, message=message))
    return out


# The Mailchimp-compatible routes answer bad input as Mailchimp does: 400 "Invalid Resource".
MAILCHIMP_PREFIX = "/3.0/"
MAILCHIMP_ERRORS = "https://mailchimp.com/developer/marketing/docs/errors/"


def mailchimp_invalid(errors: list[FieldError], detail: str | None = None) -> ProblemError:
    """Mailchimp's answer to a body that does not validate, with one entry per bad field."""
    return ProblemError(
        400,
        detail
        or "The resource submitted could not be validated. For field-specific details,"
        " see the 'errors' array.",
        title="Invalid Resource",
        type=MAILCHIMP_ERRORS,
        errors=errors,
    )


def problem_response(request: Request, exc: ProblemError) -> JSONResponse:
    body = Problem(
        type=exc.type,
        title=exc.title,
        status=exc.status,
        detail=exc.detail,
        instance=str(request.url.path),
        errors=exc.errors,
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=exc.status,
        media_type=MEDIA_TYPE,
        headers=exc.headers,
    )


def install(app: FastAPI, *, tags: frozenset[str]) -> None:
    """Makes every error of the app a problem document."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(list(exc.errors()), tags)
        if request.url.path.startswith(MAILCHIMP_PREFIX):
            return problem_response(request, mailchimp_invalid(errors))
        first = errors[0] if errors else FieldError(field="body", message="invalid")
        detail = f"{first.field}: {first.message}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem_response(request, ProblemError(422, detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request,
            ProblemError(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)),
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, ProblemError(500, "unexpected server error"))
