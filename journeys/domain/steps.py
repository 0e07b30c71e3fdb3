"""Step models: the tree of actions and rules a contact walks through."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys.domain.durations import Duration

STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        pattern=STEP_ID.pattern,
        description="Stable id, unique in the flow: letters, digits, `_`, `-`.",
    )


class SendEmail(_Step):
    """Sends one email; subject and bodies are Jinja2 templates over `contact`."""

    type: Literal["send_email"] = "send_email"
    subject: str = Field(min_length=1, max_length=998)
    preheader: str | None = Field(None, max_length=250)
    html: str | None = None
    text: str | None = None
    from_name: str | None = Field(None, max_length=100)
    from_email: str | None = Field(None, max_length=254)
    reply_to: str | None = Field(None, max_length=254)

    @model_validator(mode="after")
    def _has_body(self) -> SendEmail:
        if not (self.html or self.text):
            raise ValueError("a send_email step needs `html` or `text`")
        return self


class Delay(_Step):
    """Waits a fixed time before the next step."""

    type: Literal["delay"] = "delay"
    duration: Duration


Step = Annotated[SendEmail | Delay, Field(discriminator="type")]
