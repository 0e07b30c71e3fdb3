"""Reading flow files: YAML with YAML 1.2 booleans, so `yes:`/`no:` branch keys stay keys."""

from __future__ import annotations

import re
from typing import Any

import yaml


class _FlowLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false (YAML 1.1 also reads yes/no/on/off)."""


_FlowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_FlowLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load(text: str) -> Any:
    """Parses flow YAML (JSON is YAML too)."""
    return yaml.load(text, Loader=_FlowLoader)


def dump(data: Any) -> str:
    """Writes flow YAML in authoring order, quoting keys like `yes` that 1.1 readers misread."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
