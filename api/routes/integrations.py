"""Per-audience provider settings: the secrets receivers verify with and the URLs to give out."""

from __future__ import annotations

import secrets
import uuid
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import API_KEY_REQUIRED, PoolDep, SettingsDep
from api.problems import FieldError, Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.store import integrations

router = APIRouter(
    prefix="/audiences/{audience_id}/integrations",
    tags=["integrations"],
    dependencies=[API_KEY_REQUIRED],
)

Provider = Literal["shopify", "livechat", "eventbrite", "zapier", "site"]
# What each provider needs in `secret`, and whether we issue it a URL token instead.
_SECRET = {
    "shopify": "the app's client secret (it signs X-Shopify-Hmac-Sha256)",
    "livechat": "the webhook secret_key LiveChat sends",
    "eventbrite": "the private token the receiver fetches api_url with",
}
_ISSUED = {"eventbrite", "zapier", "site"}


class IntegrationPut(BaseModel):
    secret: str | None = Field(None, min_length=8, max_length=500)
    api_token: str | None = Field(
        None, min_length=8, max_length=500, description="LiveChat: token to fetch finished chats."
    )
    low_inventory_threshold: int = Field(
        5, ge=0, le=1_000_000, description="Shopify: stock at or below this is low."
    )


class IntegrationPublic(BaseModel):
    provider: str
    url: str = Field(description="Where the provider (or the page) sends its requests.")
    token: str | None = Field(None, description="Issued secret; shown once, stored hashed.")


def _url(base: str, provider: str, audience_id: str, token: str | None) -> str:
    return {
        "shopify": f"{base}/v1/shopify/{audience_id}/webhooks",
        "livechat": f"{base}/v1/livechat/{audience_id}/webhooks",
        "eventbrite": f"{base}/v1/eventbrite/hooks/{token}",
        "zapier": f"{base}/v1/zapier/hooks/{token}",
        "site": f"{base}/t/site.js",
    }[provider]


@router.put(
    "/{provider}",
    responses={401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
async def put_integration(
    audience_id: uuid.UUID,
    provider: Provider,
    body: IntegrationPut,
    pool: PoolDep,
    settings: SettingsDep,
) -> IntegrationPublic:
    """Sets the audience's provider settings; Eventbrite, Zapier and site tracking get a new
    secret URL token (an earlier one stops working)."""
    aid = str(audience_id)
    await require_audience(pool, aid)
    if provider in _SECRET and not body.secret:
        raise ProblemError(
            422,
            f"secret: {provider} needs {_SECRET[provider]}",
            errors=[FieldError(field="secret", message=f"{provider} needs {_SECRET[provider]}")],
        )
    if provider == "livechat" and not body.api_token:
        raise ProblemError(
            422,
            "api_token: LiveChat needs a token to fetch the finished chat's customer",
            errors=[FieldError(field="api_token", message="required for livechat")],
        )
    token = secrets.token_urlsafe(24) if provider in _ISSUED else None
    config: dict[str, object] = {}
    if provider == "shopify":
        config["low_inventory_threshold"] = body.low_inventory_threshold
    if provider == "livechat":
        config["api_token"] = body.api_token
    await integrations.put(
        pool,
        audience_id=aid,
        provider=provider,
        secret=body.secret,
        token=token,
        config=config,
    )
    return IntegrationPublic(
        provider=provider,
        url=_url(settings.effective_public_url, provider, aid, token),
        token=token,
    )
