"""Where each step of a flow sits: what comes after it, so a run can walk or resume anywhere."""

from __future__ import annotations

from journeys.domain.steps import Step


class StepTree:
    """The steps of one flow version, indexed by id, with what follows each one.

    Step ids are unique in a flow (a validation rule), so a run's position is one step id:
    the walk goes from a step to its successor, and a run continued as new resumes there.
    """

    def __init__(self, steps: list[Step]) -> None:
        self.first: Step | None = steps[0] if steps else None
        self._by_id: dict[str, Step] = {}
        self._after: dict[str, Step | None] = {}
        self._index(steps, None)

    def _index(self, steps: list[Step], then: Step | None) -> None:
        for position, step in enumerate(steps):
            following = steps[position + 1] if position + 1 < len(steps) else then
            self._by_id[step.id] = step
            self._after[step.id] = following
            for _, branch in step.branches():
                # The end of a branch goes on with what follows the step that branched.
                self._index(branch, following)

    def step(self, step_id: str) -> Step:
        """The step with this id.

        Raises:
            KeyError: the flow has no such step.
        """
        return self._by_id[step_id]

    def after(self, step: Step) -> Step | None:
        """What comes after the step and everything nested in it (None: the flow ends)."""
        return self._after[step.id]

    def enter(self, branch: list[Step], step: Step) -> Step | None:
        """The first step of a branch `step` took, or what follows `step` if it is empty."""
        return branch[0] if branch else self.after(step)
