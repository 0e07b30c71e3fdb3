"""Double opt-in: a signed confirmation link, and the email that carries it.

A contact added as `pending` gets an email with a link; following it makes the contact
`subscribed` (a `subscribed_email` event, so signed-up flows start then, not before). The link
carries the contact id signed with a key derived from `JOURNEYS_SECRET_KEY`, so it cannot be
forged for another contact, and it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
import uuid
from typing import Any

from journeys.channels.email import EmailSender, SmtpConfig, build_message, message_id_for
from journeys.config import Settings

# Long enough for an email read after a holiday; short enough that an old link is dead.
TOKEN_LIFETIME_SECONDS = 30 * 24 * 3600
CONFIRM_PATH = "/v1/optin/confirm"


def _key(settings: Settings) -> bytes:
    secret = settings.secret_key.get_secret_value().encode()
    return hashlib.sha256(b"optin:" + secret).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(
    settings: Settings, *, contact_id: str, audience_id: str, now: float | None = None
) -> str:
    """A confirmation token for this contact: payload.signature, both base64url."""
    expires = int((now if now is not None else time.time()) + TOKEN_LIFETIME_SECONDS)
    payload = _b64(json.dumps({"c": contact_id, "a": audience_id, "x": expires}).encode())
    signature = hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(signature)}"


def read_token(settings: Settings, token: str, *, now: float | None = None) -> dict[str, Any]:
    """The token's contact and audience ids.

    Raises:
        ValueError: the token was altered, is not one of ours, or has expired.
    """
    payload, _, signature = token.partition(".")
    expected = hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
    except ValueError as err:
        raise ValueError("the confirmation link is damaged") from err
    if not hmac.compare_digest(expected, given):
        raise ValueError("the confirmation link is not valid")
    # Only a payload we signed is parsed.
    data = json.loads(_unb64(payload))
    if not isinstance(data, dict) or {"c", "a", "x"} - data.keys():
        raise ValueError("the confirmation link is not valid")
    if data["x"] < (now if now is not None else time.time()):
        raise ValueError("the confirmation link has expired")
    return {"contact_id": data["c"], "audience_id": data["a"]}


def confirm_url(settings: Settings, *, contact_id: str, audience_id: str) -> str:
    token = make_token(settings, contact_id=contact_id, audience_id=audience_id)
    return f"{settings.effective_public_url}{CONFIRM_PATH}?token={token}"


async def send_confirmation(
    settings: Settings, contact: dict[str, Any], audience_name: str
) -> None:
    """Emails the contact its confirmation link (one connection, closed after the send).

    Raises:
        PermanentSendError, TransientSendError: the SMTP server refused or failed.
    """
    url = confirm_url(settings, contact_id=contact["id"], audience_id=contact["audience_id"])
    name = html.escape(audience_name)
    message = build_message(
        sender=settings.mail_from,
        to=contact["email"],
        subject=f"Please confirm your subscription to {audience_name}",
        html=(
            f"<p>Please confirm that you want to receive email from {name}.</p>"
            f'<p><a href="{html.escape(url)}">Yes, subscribe me</a></p>'
            "<p>If you did not ask for this, ignore this email: you will not be added.</p>"
        ),
        text=None,
        message_id=message_id_for(f"optin:{contact['id']}:{uuid.uuid4().hex}", settings.mail_from),
    )
    sender = EmailSender(SmtpConfig.from_settings(settings), pool_size=0)
    try:
        await sender.send(message)
    finally:
        await sender.aclose()
