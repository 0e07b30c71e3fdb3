"""What the benchmarks ran on, for the report and every results row."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

import psutil

from journeys.embedded.process import find_binary


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _temporal_version() -> str:
    try:
        out = subprocess.run(
            [find_binary("temporal"), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return out.stdout.strip() or out.stderr.strip()


def describe() -> dict[str, Any]:
    """Cores, memory, CPU model, OS, Python, Temporal CLI/server and SDK versions."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "temporal_cli": _temporal_version(),
        "temporalio_sdk": metadata.version("temporalio"),
    }
