"""Flow versions by (flow, version), cached: a version that runs have entered never changes."""

from __future__ import annotations

from collections import OrderedDict

import asyncpg

from journeys.domain.events import interests
from journeys.domain.flow import FlowDefinition
from journeys.store import flows

_SIZE = 1024


class FlowVersions:
    """Loads flow versions once per process and keeps the most recently used ones."""

    def __init__(self, pool: asyncpg.Pool, *, size: int = _SIZE) -> None:
        self._pool = pool
        self._size = size
        self._cache: OrderedDict[tuple[str, int], tuple[FlowDefinition, frozenset[str]]] = (
            OrderedDict()
        )

    async def _load(self, flow_id: str, version: int) -> tuple[FlowDefinition, frozenset[str]]:
        key = (flow_id, version)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        raw = await flows.version_definition(self._pool, flow_id, version)
        if raw is None:
            raise LookupError(f"flow {flow_id} has no version {version}")
        definition = FlowDefinition.model_validate(raw)
        self._cache[key] = (definition, interests(definition))
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return self._cache[key]

    async def definition(self, flow_id: str, version: int) -> FlowDefinition:
        """The definition a run of this version follows.

        Raises:
            LookupError: no such flow version (deleted draft).
        """
        return (await self._load(flow_id, version))[0]

    async def interests(self, flow_id: str, version: int) -> frozenset[str]:
        """Event types runs of this version react to (exit goals, waits)."""
        return (await self._load(flow_id, version))[1]
