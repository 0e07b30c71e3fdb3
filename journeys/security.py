"""API keys: generated with enough entropy that a plain SHA-256 is a safe stored form."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "jrn_"


def new_api_key() -> str:
    """A fresh key: `jrn_` + 43 url-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The stored form of a key. Keys are random, so no salt or slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()
