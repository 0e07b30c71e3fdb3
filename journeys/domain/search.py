"""Custom search attributes: the one list the dev stack, compose and workflows all register/use."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

FLOW_ID = SearchAttributeKey.for_keyword("FlowId")
FLOW_NAME = SearchAttributeKey.for_keyword("FlowName")
CONTACT_ID = SearchAttributeKey.for_keyword("ContactId")
AUDIENCE_ID = SearchAttributeKey.for_keyword("AudienceId")
TRIGGER_TYPE = SearchAttributeKey.for_keyword("TriggerType")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
JOURNEY_PHASE = SearchAttributeKey.for_keyword("JourneyPhase")

ALL: tuple[SearchAttributeKey[str], ...] = (
    FLOW_ID,
    FLOW_NAME,
    CONTACT_ID,
    AUDIENCE_ID,
    TRIGGER_TYPE,
    JOURNEY_STEP,
    JOURNEY_PHASE,
)


def cli_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
