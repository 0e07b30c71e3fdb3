"""docs/capacity.md is what `make capacity` computes from the committed benchmark results."""

from __future__ import annotations

import copy

from bench import capacity
from bench.capacity import PerStep, flow_cost


def test_committed_capacity_doc_is_the_one_the_results_give() -> None:
    expected = capacity.render(capacity.read(capacity.RESULTS))
    assert capacity.DOC.read_text() == expected, "docs/capacity.md is out of date: make capacity"


def test_the_per_step_model_reproduces_the_three_measured_shapes() -> None:
    unit = PerStep.solve(20.0, 26.0, 74.0)
    assert (unit.base, unit.send, unit.delay) == (14.0, 6.0, 6.0)
    assert unit.base + unit.send == 20.0
    assert unit.base + unit.delay + unit.send == 26.0
    assert unit.base + 5 * (unit.delay + unit.send) == 74.0


def test_a_flow_costs_its_costliest_path_and_its_armed_wait() -> None:
    unit = PerStep(base=5.0, send=1.0, delay=2.0)
    flow = {
        "triggers": [{"type": "tag_added", "tag": "vip"}],
        "steps": [
            {"id": "a", "type": "send_email"},
            {"id": "b", "type": "delay"},
            {
                "id": "c",
                "type": "if_else",
                "yes": [{"id": "d", "type": "send_email"}],
                "no": [{"id": "e", "type": "wait_until"}, {"id": "f", "type": "add_tag"}],
            },
        ],
    }
    # base 5 + send 1 + delay 2 + marker 1 + max(send 1, wait_until 2 + 1 + add_tag 1)
    assert flow_cost(flow, unit, 1.0) == 5 + 1 + 2 + 1 + 4
    armed = {**flow, "triggers": [{"type": "birthday"}]}
    assert flow_cost(armed, unit, 1.0) == flow_cost(flow, unit, 1.0) + unit.delay


def test_a_new_measurement_changes_the_document() -> None:
    rows = capacity.read(capacity.RESULTS)
    changed = copy.deepcopy(rows)
    key = "cost.billable_actions_per_contact[flow=trigger→send_email]"
    changed[key]["value"] += 1
    assert capacity.render(changed) != capacity.render(rows)
