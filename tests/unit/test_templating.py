from journeys.domain.templating import contact_context, render, syntax_error


def test_renders_standard_and_custom_fields() -> None:
    ctx = contact_context({"first_name": "Ada", "fields": {"plan": "pro"}})
    assert (
        render("Hi {{ contact.first_name }} on {{ contact.fields.plan }}", ctx) == "Hi Ada on pro"
    )


def test_missing_values_render_empty() -> None:
    assert render("Hi {{ contact.first_name }}!", contact_context({})) == "Hi !"


def test_html_escapes_values_but_text_does_not() -> None:
    ctx = contact_context({"first_name": "<b>Al</b>"})
    assert render("{{ contact.first_name }}", ctx, html=True) == "&lt;b&gt;Al&lt;/b&gt;"
    assert render("{{ contact.first_name }}", ctx) == "<b>Al</b>"


def test_sandbox_blocks_attribute_escapes() -> None:
    ctx = contact_context({"first_name": "x"})
    try:
        out = render("{{ contact.__class__.__mro__ }}", ctx)
    except Exception as exc:  # noqa: BLE001 - any refusal is fine
        assert "unsafe" in str(exc).lower() or "access" in str(exc).lower()
    else:
        assert "object" not in out


def test_syntax_errors_are_explained() -> None:
    assert syntax_error("Hi {{ contact.first_name }}") is None
    message = syntax_error("Hi {{ contact.first_name")
    assert message and message.startswith("template error on line 1")
