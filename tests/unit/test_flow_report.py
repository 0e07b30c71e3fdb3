"""The flow diagram follows the step tree: branches fan out and join at the next step."""

from __future__ import annotations

from journeys.domain.flow import FlowDefinition
from journeys.domain.flow_report import FlowReport, StepCounts, mermaid, table


def _definition() -> FlowDefinition:
    return FlowDefinition.model_validate(
        {
            "name": "Branches",
            "audience_id": "a",
            "triggers": [{"type": "tag_added", "tag": "t"}],
            "steps": [
                {"id": "hello", "type": "send_email", "subject": "Hi", "text": "x"},
                {
                    "id": "vip",
                    "type": "if_else",
                    "conditions": {"conditions": [{"type": "tag", "tag": "vip"}]},
                    "yes": [
                        {"id": "gift", "type": "add_tag", "tag": "gift"},
                        {"id": "stop", "type": "exit"},
                    ],
                    "no": [],
                },
                {"id": "bye", "type": "send_sms", "body": "bye"},
            ],
        }
    )


def test_branches_fan_out_an_exit_ends_its_path_and_empty_branches_join_the_next_step() -> None:
    lines = mermaid(_definition()).splitlines()
    edges = [line.strip() for line in lines if "-->" in line]
    assert edges == [
        "start --> s0",
        "s0 --> s1",
        "s1 -->|yes| s2",
        "s2 --> s3",
        "s1 -->|no| s4",
        "s4 --> done",
    ]
    assert '  s1{{"<b>vip</b><br/>if_else"}}' in lines


def test_counts_appear_on_nodes_and_in_the_table() -> None:
    report = FlowReport(
        flow_id="f",
        name="Branches",
        version=2,
        entered=5,
        running=1,
        completed=3,
        exited=1,
        steps=[
            StepCounts(
                step_id="hello", type="send_email", now=0, passed=5, emails_sent=5, opened=2
            ),
            StepCounts(step_id="vip", type="if_else"),
            StepCounts(step_id="gift", type="add_tag"),
            StepCounts(step_id="stop", type="exit"),
            StepCounts(step_id="bye", type="send_sms", passed=4, sms_sent=4, now=1),
        ],
    )
    text = mermaid(_definition(), report)
    assert "sent 5 · opened 2 · clicked 0" in text and "now 1 · sent 4" in text
    assert 'start(["tag_added<br/>entered 5"])' in text and 'done(["end<br/>completed 3"])' in text
    rows = table(report).splitlines()
    assert rows[0] == "Branches (v2): 5 entered, 1 running, 3 completed, 1 exited"
    assert rows[3].split() == ["hello", "send_email", "0", "5", "5", "0", "2", "0", "0", "0", "0"]
    assert rows[4].split()[:4] == ["vip", "if_else", "0", "-"]
