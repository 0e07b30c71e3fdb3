from journeys.channels.email import build_message, html_to_text, message_id_for


def test_message_id_is_stable_per_key_and_uses_sender_domain() -> None:
    a = message_id_for("wf:1:hello", "Shop <news@shop.example>")
    assert a == message_id_for("wf:1:hello", "news@shop.example")
    assert a != message_id_for("wf:2:hello", "news@shop.example")
    assert a.endswith("@shop.example>")


def test_builds_text_and_html_parts_with_hidden_preheader() -> None:
    msg = build_message(
        sender="Shop <news@shop.example>",
        to="ada@example.com",
        subject="Hi",
        html="<p>Hello <b>Ada</b></p><p>Bye</p>",
        text=None,
        message_id="<x@y>",
        preheader="Your gift inside",
        reply_to="help@shop.example",
    )
    assert msg["Reply-To"] == "help@shop.example"
    assert msg.get_body(("plain",)).get_content().strip() == "Hello Ada\nBye"
    html = msg.get_body(("html",)).get_content()
    assert "Your gift inside" in html and "display:none" in html


def test_html_to_text_keeps_paragraphs_and_unescapes() -> None:
    assert html_to_text("<h1>Sale</h1><p>Tom &amp; Jerry</p>") == "Sale\nTom & Jerry"
