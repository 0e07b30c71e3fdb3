"""Fault injection for the crash test (`make chaos`): inert unless its variable is set.

`JOURNEYS_CHAOS_KILL_FILE=/some/path` arms named crash points: when a worker reaches point
`name` and the file `/some/path.name` exists, it deletes the file and kills itself with SIGKILL,
exactly as a power cut would. Deleting is atomic, so one armed file kills one worker. Production
never sets the variable; it is read per call so a test can arm and disarm it at will.
"""

from __future__ import annotations

import os
import signal

CHAOS_KILL_FILE = "JOURNEYS_CHAOS_KILL_FILE"

# The send was accepted by the SMTP server and is not yet recorded as sent.
AFTER_SMTP_ACCEPTANCE = "after-smtp-acceptance"


def crash_point(name: str) -> None:
    """Dies here with SIGKILL if the chaos test armed this point."""
    base = os.environ.get(CHAOS_KILL_FILE)
    if not base:
        return
    try:
        os.unlink(f"{base}.{name}")
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
