"""Signed contact ids carried on links (an email click-through's `jt=` parameter).

A token names one contact and cannot be forged without `JOURNEYS_SECRET_KEY`, so a page view
that carries it can be tied to that contact. Small on purpose: the email click tracker signs,
site tracking verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

_PURPOSE = b"contact-token:"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, contact: bytes) -> bytes:
    return hmac.new(key, _PURPOSE + contact, hashlib.sha256).digest()[:16]


def sign_contact(contact_id: str, key: str) -> str:
    """A token for the contact: its id and a truncated HMAC-SHA256, both base64url."""
    raw = uuid.UUID(contact_id).bytes
    return f"{_b64(raw)}.{_b64(_mac(key.encode(), raw))}"


def verify_contact(token: str, key: str) -> str | None:
    """The contact id a token names, or None if it is malformed or not signed with `key`."""
    head, _, tail = token.partition(".")
    try:
        raw, mac = _unb64(head), _unb64(tail)
    except (ValueError, TypeError):
        return None
    if len(raw) != 16 or not hmac.compare_digest(mac, _mac(key.encode(), raw)):
        return None
    return str(uuid.UUID(bytes=raw))
