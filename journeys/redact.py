"""The effective configuration with secrets masked, for `journeys config` and support tickets."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

from journeys.config import DEV_SECRET, Settings
from journeys.settings_doc import env_name

MASK = "********"

# Names that say "this is a secret", anywhere in the name, so a DSN's `sslpassword` or a
# future `webhook_secret` setting is masked without being listed here. Masking a harmless
# value by mistake costs little; printing a credential costs a rotation.
_SECRET_WORD = re.compile(r"(password|passwd|pwd|secret|token|key)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for setting and DSN parameter names that hold credentials."""
    return bool(_SECRET_WORD.search(name))


def mask_url(url: str) -> str:
    """A URL (DSN) with its password and any secret-looking query parameters masked.

    `postgresql://app:pw@db:5432/app?sslpassword=x` becomes
    `postgresql://app:********@db:5432/app?sslpassword=********`.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _show(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        return value.as_posix()
    text = str(value)
    if "://" in text:
        return mask_url(text)
    if is_secret_name(name) and text:
        return MASK
    return text


def effective_config(settings: Settings) -> list[tuple[str, str]]:
    """(environment variable, displayed value) of every setting, secrets masked."""
    return [
        (env_name(name), _show(name, getattr(settings, name))) for name in Settings.model_fields
    ]


def render_env(settings: Settings) -> str:
    """The effective configuration as `NAME=value` lines; unset settings are left empty.

    Lines for unset database and Temporal addresses are followed by a comment saying what
    the process connects to instead, since "unset" means "the embedded dev service".
    """
    lines = []
    for env, shown in effective_config(settings):
        lines.append(f"{env}={shown}")
        if env == env_name("database_url") and not shown:
            lines.append(f"# -> embedded Postgres: {mask_url(settings.effective_database_url)}")
        if env == env_name("temporal_address") and not shown:
            lines.append(f"# -> embedded Temporal: {settings.effective_temporal_address}")
        if env == env_name("secret_key") and settings.secret_key.get_secret_value() == DEV_SECRET:
            lines.append("# -> the development secret (refused when JOURNEYS_ENV=production)")
    return "\n".join(lines) + "\n"
