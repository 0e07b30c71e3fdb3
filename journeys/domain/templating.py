"""Merge tags: Jinja2 templates over the contact, rendered in a bounded sandbox.

Templates are written by whoever edits flows and rendered by the worker for every contact, so
the sandbox bounds what one template may cost, not only what it may reach: loop iterations,
the size of every value it builds and of its output, and the time it runs. A template over a
bound fails with `TemplateRefused`; so does one the sandbox refuses (`''.__class__`). Flow
validation renders every template in this same sandbox (`render_problem`), so what would fail
when sending fails when saving.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import (
    ChainableUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Bounds of one render. A marketing email is a few hundred lines; Gmail clips at 102 kB.
MAX_ITERATIONS = 10_000
MAX_CHARS = 500_000
MAX_SECONDS = 2.0


class TemplateRefused(Exception):
    """The template cannot be rendered: a sandbox refusal, a bound exceeded, or an error."""


@dataclass
class _Budget:
    iterations: int
    deadline: float

    def tick(self, count: int = 1) -> None:
        self.iterations -= count
        if self.iterations < 0:
            raise TemplateRefused(f"loops ran more than {MAX_ITERATIONS} iterations")
        if time.monotonic() > self.deadline:
            raise TemplateRefused(f"rendering took longer than {MAX_SECONDS:g} s")


_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("template_budget")


def _tick(count: int = 1) -> None:
    budget = _budget.get(None)
    if budget is not None:
        budget.tick(count)


_MAX_BITS = 4096


def _sized(value: Any) -> Any:
    """Refuses a built value over the size bound (strings, lists, dicts, integers alike)."""
    if isinstance(value, (str, bytes, list, tuple, dict, set)) and len(value) > MAX_CHARS:
        raise TemplateRefused(f"a value grew past {MAX_CHARS} characters or items")
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise TemplateRefused("a number grew larger than templates may use")
    return value


def _small_numbers(args: Iterable[Any]) -> None:
    # Widths and counts are how one call builds a huge value (`center(10**9)`).
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_CHARS:
            raise TemplateRefused(f"the number {arg} is larger than templates may use")


_FORMAT_NUMBER = re.compile(r"\d+")


def _small_format(text: Any) -> None:
    # `'%0999999999d' % 1` pads to a width written in the format string itself.
    if isinstance(text, str) and any(
        len(n) > 6 or int(n) > MAX_CHARS for n in _FORMAT_NUMBER.findall(text)
    ):
        raise TemplateRefused("a format width is larger than templates may use")


def _join_size(items: Any, separator: Any = "") -> None:
    if isinstance(items, (list, tuple)):
        gaps = len(separator) * len(items) if isinstance(separator, str) else 0
        if sum(len(i) if isinstance(i, str) else 24 for i in items) + gaps > MAX_CHARS:
            raise TemplateRefused(f"a joined value would pass {MAX_CHARS} characters")


def _bounded_loop(iterable: Any) -> Iterator[Any]:
    """Every `{% for %}` iterates through here, so each iteration spends the budget."""
    for item in iterable:
        _tick()
        yield item


# Filters whose parameters are widths or counts of what they build.
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # The value comes after the context/environment argument Jinja passes to some filters.
    first = 1 if hasattr(function, "jinja_pass_arg") else 0

    @functools.wraps(function)  # keeps `jinja_pass_arg`, so context/env are still passed
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick(0)
        value, params = (args[first], args[first + 1 :]) if len(args) > first else (None, ())
        if name in _WIDTH_FILTERS or (name == "format" and "*" in str(value)):
            _small_numbers(params)
            _small_numbers(kwargs.values())
        if name == "format":
            _small_format(value)
        if name == "join":
            _join_size(value, params[0] if params else kwargs.get("d", ""))
        return _sized(function(*args, **kwargs))

    return guarded


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus budgets: loop iterations, value sizes and a deadline."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=ChainableUndefined)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["_journeys_loop"] = _bounded_loop
        self.filters["_journeys_sized"] = _sized
        # No `lipsum` (it writes pages on request); `range` holds at most MAX_ITERATIONS.
        self.globals = {
            "range": self._range,
            "dict": dict,
            "namespace": self.globals["namespace"],
            "cycler": self.globals["cycler"],
            "joiner": self.globals["joiner"],
        }

    @staticmethod
    def _range(*args: int) -> range:
        numbers = range(*args)
        if len(numbers) > MAX_ITERATIONS:
            raise TemplateRefused(f"range() may hold at most {MAX_ITERATIONS} numbers")
        return numbers

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        # Every loop spends the iteration budget; every `~` result is held to the size bound.
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_journeys_loop", [], [], None, None)
        for concat in list(tree.find_all(nodes.Concat)):
            concat.nodes = [
                nodes.Filter(n, "_journeys_sized", [], [], None, None) for n in concat.nodes
            ]
        return tree

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja would return an undefined that fails only when used; refuse at once, so
        # `{{ ''.__class__ }}` fails as loudly as `{{ ''.__class__.__mro__ }}`.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = str(value.__self__)
        _small_format(template)
        nested = ":{" in template  # a width taken from the arguments: `'{:{}}'.format(x, n)`

        def bounded(*args: Any, **kwargs: Any) -> str:
            if nested:
                _small_numbers(args)
                _small_numbers(kwargs.values())
            result: str = _sized(wrapped(*args, **kwargs))
            return result

        return bounded

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick(0)
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    if len(seq) * times > MAX_CHARS:
                        raise TemplateRefused(f"a repeated value would pass {MAX_CHARS} items")
            if ints and left.bit_length() + right.bit_length() > _MAX_BITS:
                raise TemplateRefused("a number grew larger than templates may use")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1:
            if ints and left.bit_length() * right > _MAX_BITS:
                raise TemplateRefused("an exponent is larger than templates may use")
        if operator == "%":
            _small_format(left)
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick(0)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in _WIDTH_METHODS:
                _small_numbers(args)
            if name == "join" and args:
                _join_size(args[0], owner)
            if name == "replace" and len(args) >= 2 and isinstance(args[1], str):
                old, new = args[0], args[1]
                hits = owner.count(old) if old else len(owner) + 1
                if len(owner) + hits * len(new) > MAX_CHARS:
                    raise TemplateRefused(f"a replaced value would pass {MAX_CHARS} characters")
        return _sized(super().call(__context, __obj, *args, **kwargs))


_text_env = _BoundedSandbox(autoescape=False)
_html_env = _BoundedSandbox(autoescape=True)

# What a template may name: the contact, the enrolling event's data, the flow, the contact's
# own unsubscribe link (empty in transactional email, which has none), and in abandoned-cart
# flows the cart as it was when the timer fired.
CONTACT_FIELDS = frozenset({
    "id", "audience_id", "email", "subscriber_hash", "status", "first_name", "last_name",
    "phone", "sms_status", "timezone", "birthday", "signup_at", "created_at", "updated_at",
    "fields", "tags",
})  # fmt: skip
TOP_LEVEL = frozenset({"contact", "event", "flow", "cart", "unsubscribe_url"})

# The contact validation renders templates for: every standard field set, no custom fields.
SAMPLE_CONTACT: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000000",
    "audience_id": "00000000-0000-4000-8000-000000000001",
    "email": "ada@example.com",
    "subscriber_hash": "0" * 32,
    "status": "subscribed",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "phone": "+15550100",
    "sms_status": "subscribed",
    "timezone": "Europe/London",
    "birthday": "12-10",
    "signup_at": "2026-01-01T00:00:00+00:00",
    "created_at": "2026-01-01T00:00:00+00:00",
    "updated_at": "2026-01-01T00:00:00+00:00",
    "fields": {},
    "tags": [],
}


@lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> Template:
    return (_html_env if html else _text_env).from_string(source)


def render(source: str, context: dict[str, Any], *, html: bool = False) -> str:
    """Renders a template within the bounds; missing values render empty, as in every mail merge.

    Blocks the calling thread for up to `MAX_SECONDS`: from async code use
    `journeys.rendering.render_fields`, which renders in a thread.

    Args:
        source: Jinja2 template text, e.g. `Hi {{ contact.first_name }}`.
        context: Variables, typically `{"contact": {...}}`.
        html: Escape substituted values for HTML.

    Raises:
        TemplateRefused: the sandbox refused it, it passed a bound, or it failed.
    """
    token = _budget.set(_Budget(MAX_ITERATIONS, time.monotonic() + MAX_SECONDS))
    try:
        size, parts = 0, []
        for chunk in _compile(source, html).generate(context):
            size += len(chunk)
            if size > MAX_CHARS:
                raise TemplateRefused(f"the output passed {MAX_CHARS} characters")
            parts.append(chunk)
        return "".join(parts)
    except TemplateRefused:
        raise
    except SecurityError as exc:
        raise TemplateRefused(f"refused by the sandbox: {exc}") from exc
    except RecursionError as exc:
        raise TemplateRefused("the template recursed too deeply") from exc
    except MemoryError as exc:
        raise TemplateRefused("the template used too much memory") from exc
    except Exception as exc:
        raise TemplateRefused(f"{type(exc).__name__}: {exc}") from exc
    finally:
        _budget.reset(token)


def render_problem(source: str, *, html: bool = False) -> str | None:
    """Why the template fails for the sample contact, or None; run at validation.

    Only failures that no contact's data can avoid count: sandbox refusals, bounds, unknown
    filters or tests. A missing value used in arithmetic, say, may well be set on real
    contacts, so it is not held against the template (it fails that contact's send only).
    """
    context = contact_context(
        SAMPLE_CONTACT,
        event={},
        flow={"id": SAMPLE_CONTACT["audience_id"], "name": "Sample"},
        cart=SAMPLE_CART,
    )
    try:
        render(source, context, html=html)
    except TemplateRefused as exc:
        cause = exc.__cause__
        if cause is None or isinstance(cause, (SecurityError, RecursionError, MemoryError)):
            return str(exc)
        if isinstance(cause, TemplateError) and not isinstance(cause, UndefinedError):
            return str(exc)
    return None


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
            " use contact.*, event.*, flow.*, cart.* or unsubscribe_url"
        )
    for node in tree.find_all(nodes.Getattr):
        on_contact = isinstance(node.node, nodes.Name) and node.node.name == "contact"
        if on_contact and node.attr not in CONTACT_FIELDS:
            problems.append(
                f"unknown merge tag 'contact.{node.attr}'{_suggest(node.attr, CONTACT_FIELDS)};"
                f" custom fields are contact.fields.{node.attr}"
            )
    return problems


def template_problems(source: str, *, html: bool = False) -> list[str]:
    """Every reason to refuse a template when a flow is saved: merge tags, then a sample render."""
    problems = merge_tag_errors(source)
    if not problems:
        problem = render_problem(source, html=html)
        if problem:
            problems.append(problem)
    return problems


@dataclass(frozen=True)
class CartView:
    """The cart merge tags see in abandoned-cart flows: `{{ cart.items }}`, `{{ cart.url }}`,
    `{{ cart.total }}` (an object, so `cart.items` is the list, not a dict method)."""

    id: str | None = None
    items: tuple[Mapping[str, Any], ...] = ()
    url: str | None = None
    total: float | None = None
    currency: str | None = None

    @classmethod
    def of(cls, cart: Mapping[str, Any] | None) -> CartView:
        """The view of a cart as an armed run found it (empty when there is none)."""
        if not cart:
            return cls()
        return cls(
            id=cart.get("id"),
            items=tuple(cart.get("items") or ()),
            url=cart.get("url"),
            total=cart.get("total"),
            currency=cart.get("currency"),
        )


SAMPLE_CART = CartView(
    id="cart-1",
    items=({"product_id": "p-1", "quantity": 1, "price": 9.5},),
    url="https://example.com/cart",
    total=9.5,
    currency="EUR",
)


def contact_context(
    contact: Mapping[str, Any], *, unsubscribe_url: str = "", **extra: Any
) -> dict[str, Any]:
    """Builds the merge context: standard fields, custom ones under `contact.fields`.

    Args:
        contact: The contact row.
        unsubscribe_url: The contact's one-click unsubscribe link for this message.
        **extra: Further top-level names (`event`, `flow`, `cart`).
    """
    return {
        "contact": {**contact, "fields": dict(contact.get("fields") or {})},
        "unsubscribe_url": unsubscribe_url,
        **extra,
    }
