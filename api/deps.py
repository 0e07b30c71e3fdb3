"""Dependencies as `Annotated` aliases, used directly as handler parameters."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from temporalio.client import Client

from api.keycache import KeyCache
from api.problems import ProblemError
from journeys.config import Settings
from journeys.ingest import Ingest
from journeys.registry import FlowRegistry
from journeys.security import hash_api_key
from journeys.store import apikeys
from journeys.wiring import Core

_CHALLENGE = {"WWW-Authenticate": 'Bearer, Basic realm="journeys"'}


def _state(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state


def _core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


# The dependencies below are coroutines although they never wait: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hand-off per dependency per request (it was ~8% of
# the gateway's CPU per event).


async def get_pool(request: Request) -> asyncpg.Pool:
    return _core(request).pool


async def get_temporal(request: Request) -> Client:
    return _core(request).client


async def get_settings(request: Request) -> Settings:
    return _state(request).settings


async def get_registry(request: Request) -> FlowRegistry:
    return _core(request).registry


async def get_ingest(request: Request) -> Ingest:
    return _core(request).ingest


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        # Mailchimp style: any user name, the key as password.
        return decoded.partition(":")[2] or None
    return None


async def require_api_key(request: Request) -> str:
    """Authenticates the caller by API key; returns the key's name.

    Valid keys are remembered for a few seconds so a burst of requests costs one query; a
    revocation reaches the cache at once (see `api.keycache`).
    """
    key = _presented_key(request)
    if key is None:
        raise ProblemError(
            401, "an API key is required (Authorization: Bearer <key>)", headers=_CHALLENGE
        )
    cache: KeyCache = _state(request).key_cache
    digest = hash_api_key(key)
    hit = cache.get(digest)
    if hit is not None:
        return hit
    generation = cache.generation()
    name = await apikeys.verify(_core(request).pool, key)
    if name is None:
        cache.drop(digest)
        raise ProblemError(401, "the API key is not valid", headers=_CHALLENGE)
    cache.put(digest, name, generation)
    return name


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[FlowRegistry, Depends(get_registry)]
IngestDep = Annotated[Ingest, Depends(get_ingest)]
ApiKeyDep = Annotated[str, Depends(require_api_key)]
# Declared once per router: every route of an authenticated router needs an API key.
API_KEY_REQUIRED = Depends(require_api_key)
