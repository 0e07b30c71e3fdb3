"""One router per resource, collected here."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import audiences, bounces, campaigns, contacts, flows, reports

v1 = APIRouter(prefix="/v1")
v1.include_router(audiences.router)
v1.include_router(contacts.router)
v1.include_router(flows.router)
v1.include_router(campaigns.router)
v1.include_router(bounces.router)
v1.include_router(reports.router)
