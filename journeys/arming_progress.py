"""The CLI's wait for an activation to arm a flow's audience, drawn as a progress bar.

Activating a flow with a date trigger or a purchase lapse arms the contacts already in the
audience in the background (`ArmFlowWorkflow`); `GET /v1/flows/{id}` shows how far it has come
(`arming`: armed, skipped, total, done). `journeys flow activate` and `journeys flow apply
--activate` poll it and draw a bar on stderr: redrawn in place on a terminal, a line per change
otherwise (logs, CI), and a last line with the totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

import httpx

WIDTH = 30


def bar(arming: dict[str, Any]) -> str:
    """One progress line: bar, percentage, counts."""
    total, armed, skipped = arming["total"], arming["armed"], arming["skipped"]
    if total:
        share = min(1.0, (armed + skipped) / total)
    else:  # not counted yet (0), or an empty audience (0 and done)
        share = 1.0 if arming["done"] else 0.0
    filled = "#" * int(share * WIDTH)
    return f"[{filled:<{WIDTH}}] {share:4.0%}  {armed} armed, {skipped} skipped of {total}"


def totals(arming: dict[str, Any]) -> str:
    """The last line, once arming is done."""
    return f"armed {arming['armed']}, skipped {arming['skipped']} of {arming['total']} contact(s)"


def wait(
    client: httpx.Client,
    flow_id: str,
    stream: TextIO,
    *,
    interval: float = 0.5,
    on_error: Callable[[httpx.Response], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Polls the flow until arming is done, drawing progress on `stream`.

    Args:
        client: An authenticated client of the API.
        flow_id: The flow just activated.
        stream: Where the bar goes (stderr: stdout keeps only the flow id).
        interval: Seconds between polls.
        on_error: Prints a problem answer.
        sleep: Waits between polls (tests pass a recorder).

    Returns:
        The exit code: 0 when arming is done (or the flow arms nobody), 1 when the API refused
        or arming stopped because the flow is no longer active.
    """
    tty = stream.isatty()
    shown: str | None = None
    while True:
        response = client.get(f"/v1/flows/{flow_id}")
        if response.status_code >= 400:
            on_error(response)
            return 1
        flow = response.json()
        arming = flow.get("arming")
        if arming is None:  # no date trigger or purchase lapse: nobody to arm
            return 0
        line = bar(arming)
        if arming["done"] or flow["status"] != "active":
            if tty:
                print(f"\r{line}", file=stream)
            elif line != shown:
                print(line, file=stream)
            if not arming["done"]:
                print(f"arming stopped: the flow is {flow['status']}", file=stream, flush=True)
                return 1
            print(totals(arming), file=stream, flush=True)
            return 0
        if line != shown:
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=stream, flush=True)
            shown = line
        sleep(interval)
