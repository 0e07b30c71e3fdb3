"""`journeys schedule next`: the installed console script, run as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

JOURNEYS = Path(sys.executable).parent / "journeys"


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    # No JOURNEYS_* settings and an empty home: the preview needs no server and no configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["HOME"] = str(home)
    return subprocess.run(
        [str(JOURNEYS), "schedule", "next", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=60,
        check=False,
    )


def test_json_is_one_line_with_the_skipped_hour_moved_forward(tmp_path: Path) -> None:
    done = _run(
        "--trigger", "birthday", "--date", "03-14", "--time", "02:30",
        "--tz", "America/New_York", "--now", "2027-03-01T00:00:00Z", "--json",
        home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        '{"utc": "2027-03-14T07:30:00Z", "local": "2027-03-14T03:30", "zone": "America/New_York"}\n'
    )
    assert json.loads(done.stdout)["zone"] == "America/New_York"


def test_text_output_names_utc_local_time_and_the_adjustment(tmp_path: Path) -> None:
    done = _run(
        "--trigger", "recurring_date", "--date", "02-29", "--time", "09:00",
        "--tz", "Asia/Kathmandu", "--offset", "-3", "--now", "2027-01-01T00:00:00+05:45",
        home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # 29 Feb → 28 Feb in 2027, three days earlier: 25 Feb, 09:00 at +05:45.
    assert lines[0] == "utc    2027-02-25T03:15:00Z"
    assert lines[1] == "local  2027-02-25T09:00 Asia/Kathmandu (UTC+05:45)"
    assert "29 February falls on 28 February in 2027" in lines[2]


def test_a_specific_date_with_an_offset_into_next_year(tmp_path: Path) -> None:
    done = _run(
        "--trigger", "specific_date", "--date", "2027-12-30", "--time", "08:00",
        "--tz", "Europe/Paris", "--offset", "3", "--now", "2027-06-01T00:00:00Z", "--json",
        home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "utc": "2028-01-02T07:00:00Z",
        "local": "2028-01-02T08:00",
        "zone": "Europe/Paris",
    }


def test_a_moment_that_will_not_come_exits_3_with_the_reason(tmp_path: Path) -> None:
    done = _run(
        "--trigger", "specific_date", "--date", "2027-02-28", "--time", "18:00",
        "--tz", "Europe/Paris", "--now", "2027-03-01T00:00:00Z", "--json",
        home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stdout == ""
    assert "has passed" in done.stderr
    assert "2027-02-28 18:00 Europe/Paris" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--trigger", "specific_date", "--date", "03-14"], "--date: '03-14'"),
        (["--trigger", "birthday", "--date", "02-30"], "--date: '02-30'"),
        (["--trigger", "birthday", "--date", "03-14", "--tz", "Mars/Olympus"], "Mars/Olympus"),
        (["--trigger", "birthday", "--date", "03-14", "--time", "24:00"], "--time"),
        (["--trigger", "birthday", "--date", "03-14", "--offset", "5"], "--offset"),
        (["--trigger", "birthday", "--date", "03-14", "--offset", "soon"], "--offset"),
        (["--trigger", "birthday", "--date", "03-14", "--now", "2027-03-01T00:00"], "--now"),
        (["--trigger", "tag_added", "--date", "03-14"], "--trigger"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(tmp_path: Path, args: list[str], says: str) -> None:
    defaults = {"--time": "09:00", "--tz": "Europe/Paris"}
    for flag, value in defaults.items():
        if flag not in args:
            args = [*args, flag, value]
    done = _run(*args, home=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert says in done.stderr
    assert "Traceback" not in done.stderr
