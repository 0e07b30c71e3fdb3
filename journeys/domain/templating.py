"""Merge tags: Jinja2 templates over the contact, rendered in a sandbox."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

_text_env = SandboxedEnvironment(autoescape=False)
_html_env = SandboxedEnvironment(autoescape=True)


@lru_cache(maxsize=512)
def _compile(source: str, html: bool):  # type: ignore[no-untyped-def]
    return (_html_env if html else _text_env).from_string(source)


def render(source: str, context: dict[str, Any], *, html: bool = False) -> str:
    """Renders a template; missing values render empty, as in every mail merge.

    Args:
        source: Jinja2 template text, e.g. `Hi {{ contact.first_name }}`.
        context: Variables, typically `{"contact": {...}}`.
        html: Escape substituted values for HTML.
    """
    return _compile(source, html).render(context)


def syntax_error(source: str) -> str | None:
    """Returns a human message if the template does not parse, else None."""
    try:
        _compile(source, False)
    except TemplateSyntaxError as exc:
        return f"template error on line {exc.lineno}: {exc.message}"
    return None


def contact_context(contact: dict[str, Any]) -> dict[str, Any]:
    """Builds the merge context: standard fields first, custom `fields` reachable both ways."""
    fields = dict(contact.get("fields") or {})
    merged = {**fields, **{k: v for k, v in contact.items() if k != "fields"}}
    merged["fields"] = fields
    return {"contact": merged}
