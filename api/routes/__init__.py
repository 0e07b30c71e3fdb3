"""One router per resource, collected here."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    admin,
    audiences,
    bounces,
    campaigns,
    contacts,
    eventbrite,
    events,
    flows,
    imports,
    integrations,
    journeys,
    livechat,
    merge_fields,
    optin,
    reports,
    shopify,
    surveys,
    twilio,
    zapier,
)

v1 = APIRouter(prefix="/v1")
v1.include_router(audiences.router)
v1.include_router(contacts.router)
v1.include_router(events.router)
v1.include_router(journeys.router)
v1.include_router(flows.schema_router)
v1.include_router(flows.router)
v1.include_router(campaigns.router)
v1.include_router(integrations.router)
v1.include_router(shopify.router)
v1.include_router(twilio.router)
v1.include_router(eventbrite.router)
v1.include_router(livechat.router)
v1.include_router(zapier.router)
v1.include_router(surveys.router)
v1.include_router(admin.router)
v1.include_router(imports.router)
v1.include_router(merge_fields.router)
v1.include_router(optin.router)
v1.include_router(bounces.router)
v1.include_router(reports.router)
