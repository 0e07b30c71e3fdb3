"""Finding 5: one template cannot freeze the process; what fails at send time fails at save time."""

from __future__ import annotations

import asyncio

import pytest

from journeys.domain.templating import (
    MAX_ITERATIONS,
    TemplateRefused,
    contact_context,
    render,
    template_problems,
)
from journeys.rendering import FieldRefused, render_fields

NESTED_LOOPS = (
    "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}"
)
CONTEXT = contact_context(
    {"first_name": "Ada", "fields": {"plan": "pro"}, "tags": ["vip"]}, event={}, flow={}
)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (NESTED_LOOPS, f"more than {MAX_ITERATIONS} iterations"),
        ("{{ range(10000000)|list }}", "range() may hold at most"),
        ("{{ 'x' * 100000000 }}", "repeated value"),
        ("{{ 'x'|center(1000000000) }}", "larger than templates may use"),
        ("{{ 'x'.ljust(1000000000) }}", "larger than templates may use"),
        ("{{ '%0999999999d' % 1 }}", "format width"),
        ("{{ '{:>999999999}'.format(1) }}", "format width"),
        ("{{ 99 ** 99999 }}", "exponent"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "grew past",
        ),
        ("{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}", "the output passed"),
        (
            "{% for i in range(10000) %}{{ ('x' * 400000).upper()|length }}{% endfor %}",
            "took longer than",
        ),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed"),
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{{ contact.fields.__class__ }}", "unsafe"),
        ("{{ contact.tags.append('x') }}", "unsafe"),
    ],
)
def test_costly_or_unsafe_templates_are_refused_at_validation(source: str, reason: str) -> None:
    [problem] = template_problems(source)
    assert reason in problem
    with pytest.raises(TemplateRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        render(source, CONTEXT)


def test_ordinary_templates_pass_and_missing_values_render_empty() -> None:
    source = (
        "Hi {{ contact.first_name|default('there') }}, {{ contact.fields.plan|upper }}"
        "{% for t in ['a', 'b'] %} {{ loop.index }}{{ t }}{% endfor %}"
        " {{ '%.2f'|format(2.5) }} {{ '{} {}'.format(contact.first_name, 1500000) }}"
        "{{ contact.fields.address.city }}{{ event.order.total }}"
    )
    assert template_problems(source) == []
    assert render(source, CONTEXT) == "Hi Ada, PRO 1a 2b 2.50 Ada 1500000"


def test_failures_that_depend_on_the_contact_do_not_block_saving() -> None:
    # The sample contact has no `points`; a real one may. Its send fails, the flow saves.
    assert template_problems("{{ contact.fields.points + 1 }}") == []
    with pytest.raises(TemplateRefused, match="UndefinedError"):
        render("{{ contact.fields.points + 1 }}", CONTEXT)


async def test_a_runaway_template_fails_fast_without_holding_up_the_event_loop() -> None:
    rendering = asyncio.create_task(render_fields({"html": (NESTED_LOOPS, True)}, CONTEXT))
    ticks_while_rendering = 0

    async def other_work() -> None:
        nonlocal ticks_while_rendering
        while not rendering.done():
            ticks_while_rendering += 1
            await asyncio.sleep(0)  # poll: one step, then yield to the loop

    worker = asyncio.create_task(other_work())
    with pytest.raises(FieldRefused, match=f"html: loops ran more than {MAX_ITERATIONS}"):
        await rendering
    await worker
    # Had the render run on the loop, nothing else could have run until it ended.
    assert ticks_while_rendering > 1
