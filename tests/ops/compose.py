"""Reads docker-compose.yml the way `docker compose` does, for tests without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME; $$ escapes.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A `${NAME:?message}` variable was unset, as `docker compose` would report."""


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines of a compose .env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def variables(text: str) -> set[str]:
    """Names of the variables a compose file interpolates."""
    return {
        m.group("braced") or m.group("plain")
        for m in _VARIABLE.finditer(text)
        if not m.group("escaped")
    }


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitutes variables like `docker compose` does (the subset the spec defines)."""

    def substitute(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset else value  # type: ignore[return-value]
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return value  # type: ignore[return-value]
        return value or ""

    return _VARIABLE.sub(substitute, text)


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model, interpolated with `env` (default: the values of .env.example)."""
    text = COMPOSE_FILE.read_text()
    return yaml.safe_load(interpolate(text, read_env_file(ENV_EXAMPLE) if env is None else env))


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever form the file uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """{dependency: condition}; the short list form means `service_started`."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}
