"""The code in docs/operations.md runs as written."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

from journeys.config import Settings
from tests.ops.compose import ROOT


def _python_blocks() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


async def test_replay_check_of_the_upgrade_procedure_runs(settings: Settings) -> None:
    [script] = [block for block in _python_blocks() if "Replayer" in block]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["JOURNEYS_TEMPORAL_ADDRESS"] = settings.effective_temporal_address
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Exit 0: every running workflow of the test server replays on the current code.
    assert result.returncode == 0, result.stdout + result.stderr
