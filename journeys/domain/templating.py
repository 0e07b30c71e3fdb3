"""Merge tags: Jinja2 templates over the contact, rendered in a sandbox."""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

_text_env = SandboxedEnvironment(autoescape=False)
_html_env = SandboxedEnvironment(autoescape=True)

# What a template may name: the contact, the enrolling event's data, the flow, and the
# contact's own unsubscribe link (empty in transactional email, which has none).
CONTACT_FIELDS = frozenset({
    "id", "audience_id", "email", "subscriber_hash", "status", "first_name", "last_name",
    "phone", "sms_status", "timezone", "birthday", "signup_at", "created_at", "updated_at",
    "fields", "tags",
})  # fmt: skip
TOP_LEVEL = frozenset({"contact", "event", "flow", "unsubscribe_url"})


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


def _suggest(name: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def merge_tag_errors(source: str) -> list[str]:
    """Human messages for template errors: syntax, or merge tags that name nothing.

    Custom fields are reached as `contact.fields.<name>` (any name: they vary per contact);
    other `contact.<name>` must be a standard field, so a typo is caught before sending.
    """
    error = syntax_error(source)
    if error:
        return [error]
    tree = _text_env.parse(source)
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree) - TOP_LEVEL - set(_text_env.globals)):
        problems.append(
            f"unknown merge tag {name!r}{_suggest(name, TOP_LEVEL)}:"
            " use contact.*, event.*, flow.* or unsubscribe_url"
        )
    for node in tree.find_all(nodes.Getattr):
        on_contact = isinstance(node.node, nodes.Name) and node.node.name == "contact"
        if on_contact and node.attr not in CONTACT_FIELDS:
            problems.append(
                f"unknown merge tag 'contact.{node.attr}'{_suggest(node.attr, CONTACT_FIELDS)};"
                f" custom fields are contact.fields.{node.attr}"
            )
    return problems


def contact_context(
    contact: dict[str, Any], *, unsubscribe_url: str = "", **extra: Any
) -> dict[str, Any]:
    """Builds the merge context: standard fields, custom ones under `contact.fields`.

    Args:
        contact: The contact row.
        unsubscribe_url: The contact's one-click unsubscribe link for this message.
        **extra: Further top-level names (`event`, `flow`).
    """
    return {
        "contact": {**contact, "fields": dict(contact.get("fields") or {})},
        "unsubscribe_url": unsubscribe_url,
        **extra,
    }
