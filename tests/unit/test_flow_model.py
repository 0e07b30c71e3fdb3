import pytest
import yaml
from pydantic import ValidationError

from api.problems import validation_errors
from journeys.domain.flow import TYPE_TAGS, FlowDefinition
from journeys.domain.steps import Delay, SendEmail
from journeys.domain.validation import violations

WELCOME = """
name: Welcome VIPs
audience_id: "a1"
triggers: [{type: tag_added, tag: vip}]
steps:
  - {id: hello, type: send_email, subject: "Welcome {{ contact.first_name }}", html: "<p>Hi {{ contact.first_name }}</p>"}
  - {id: pause, type: delay, duration: 2d}
  - {id: again, type: send_email, subject: "Still there?", html: "<p>...</p>"}
"""


def _errors(data: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        FlowDefinition.model_validate(data)
    return {e.field: e.message for e in validation_errors(info.value.errors(), TYPE_TAGS)}


def test_yaml_flow_parses_into_typed_steps() -> None:
    flow = FlowDefinition.model_validate(yaml.safe_load(WELCOME))
    assert [type(s) for s in flow.steps] == [SendEmail, Delay, SendEmail]
    assert flow.triggers[0].tag == "vip"
    assert violations(flow) == []


def test_authored_form_round_trips_without_defaults() -> None:
    data = yaml.safe_load(WELCOME)
    assert FlowDefinition.model_validate(data).authored() == data


def test_error_paths_name_the_authored_field() -> None:
    data = yaml.safe_load(WELCOME)
    data["steps"][1]["duration"] = "soon"
    data["steps"][2] = {"id": "x", "type": "fax"}
    data["steps"][0].pop("html")
    errors = _errors(data)
    assert set(errors) == {"steps[0]", "steps[1].duration", "steps[2].type"}
    assert "html" in errors["steps[0]"]


def test_unknown_keys_are_refused() -> None:
    data = yaml.safe_load(WELCOME)
    data["steps"][1]["duraton"] = "2d"
    assert "steps[1].duraton" in _errors(data)


def test_trigger_count_is_one_to_three() -> None:
    data = yaml.safe_load(WELCOME)
    data["triggers"] = []
    assert "triggers" in _errors(data)
    data["triggers"] = [{"type": "tag_added", "tag": f"t{i}"} for i in range(4)]
    assert "triggers" in _errors(data)


def test_step_ids_are_checked() -> None:
    data = yaml.safe_load(WELCOME)
    data["steps"][0]["id"] = "has space"
    assert "steps[0].id" in _errors(data)


@pytest.mark.parametrize(
    ("other", "refused"),
    [("birthday", True), ("recurring_date", True), ("signup_date", True)],
)
def test_a_specific_date_refuses_only_the_yearly_date_triggers(other: str, refused: bool) -> None:
    # TRIGGERS.md: specific dates cannot be combined with yearly triggers (birthday, recurring
    # date, and the signup anniversary).
    data = yaml.safe_load(WELCOME)
    data["triggers"] = [{"type": "specific_date", "field": "webinar"}, {"type": other}]
    if other == "recurring_date":
        data["triggers"][1]["field"] = "renewal"
    codes = [v.code for v in violations(FlowDefinition.model_validate(data))]
    assert ("specific_date_with_yearly" in codes) is refused
