"""Rendering templates off the event loop, so one template can never stall other work.

A render is bounded (`journeys.domain.templating`), but even a bounded one is CPU work that
would hold up every other coroutine of the worker or the API while it runs. So renders go to
a small pool of threads, and the caller waits at most a little longer than the render's own
deadline: a render that somehow ignores its bounds is abandoned, not awaited.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from journeys.domain.templating import MAX_SECONDS, TemplateRefused, render

_THREADS = 4
_executor: ThreadPoolExecutor | None = None


class FieldRefused(TemplateRefused):
    """A template of one named field (`subject`, `html`, `body.email`…) cannot be rendered."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="journeys-render")
    return _executor


def _render_all(
    templates: Mapping[str, tuple[str, bool]], context: dict[str, Any]
) -> dict[str, str]:
    rendered = {}
    for field, (source, html) in templates.items():
        try:
            rendered[field] = render(source, context, html=html)
        except TemplateRefused as exc:
            raise FieldRefused(field, str(exc)) from exc
    return rendered


async def render_fields(
    templates: Mapping[str, tuple[str, bool]], context: dict[str, Any]
) -> dict[str, str]:
    """Renders named templates in a worker thread and returns them by name.

    Args:
        templates: field name -> (template source, escape values for HTML).
        context: The merge context (`contact_context(...)`).

    Raises:
        FieldRefused: a template was refused, failed or passed a bound; names the field.
    """
    if not templates:
        return {}
    loop = asyncio.get_running_loop()
    call = contextvars.copy_context().run
    future = loop.run_in_executor(_pool(), call, _render_all, templates, context)
    try:
        return await asyncio.wait_for(future, timeout=MAX_SECONDS * len(templates) + 1.0)
    except TimeoutError as exc:
        raise FieldRefused(", ".join(templates), "rendering did not finish in time") from exc
