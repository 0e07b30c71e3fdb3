"""The `journeys` command: dev stack, production processes, keys and flow files."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from pydantic import ValidationError

from journeys import flowfile
from journeys.config import Settings

if TYPE_CHECKING:
    from journeys.domain.firing import DateTrigger


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every SMTP conversation at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def _dev(settings: Settings, _args: argparse.Namespace) -> int:
    from journeys.devstack import run_dev

    asyncio.run(run_dev(settings))
    return 0


def _worker(settings: Settings, _args: argparse.Namespace) -> int:
    from workers.worker import run_worker

    asyncio.run(run_worker(settings))
    return 0


def _api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        workers=1,
        log_level=args.log_level or settings.log_level.lower(),
        proxy_headers=True,
    )
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from journeys.store.migrate import migrate

    applied = asyncio.run(migrate(settings.effective_database_url))
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def _apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg

    from journeys.store import apikeys

    async def create() -> str:
        conn = await asyncpg.connect(settings.effective_database_url)
        try:
            return await apikeys.create(conn, args.name)
        finally:
            await conn.close()

    print(asyncio.run(create()))
    return 0


async def _with_connection(settings: Settings, work: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(settings.effective_database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


def _apikey_list(settings: Settings, _args: argparse.Namespace) -> int:
    from journeys.store import apikeys

    rows = asyncio.run(_with_connection(settings, apikeys.list_all))

    def when(value: Any) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    table = [("PREFIX", "NAME", "CREATED", "LAST USED", "STATUS")] + [
        (
            r["prefix"],
            r["name"],
            when(r["created_at"]),
            when(r["last_used_at"]),
            f"revoked {when(r['revoked_at'])}" if r["revoked_at"] else "active",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _apikey_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from journeys.store import apikeys

    async def revoke(conn: Any) -> int:
        async with conn.transaction():
            keys = await apikeys.active_matching(conn, args.key)
            if not keys:
                print(f"no active key has the prefix or name {args.key!r}", file=sys.stderr)
                return 1
            if len(keys) > 1 and not args.all:
                # Rotation creates a second key under the same name: never revoke both by accident.
                print(
                    f"{len(keys)} active keys match {args.key!r}; name one by its prefix"
                    " or pass --all:",
                    file=sys.stderr,
                )
                for key in keys:
                    created = f"{key['created_at']:%Y-%m-%d %H:%M}"
                    print(f"  {key['prefix']}  {key['name']}  created {created}", file=sys.stderr)
                return 1
            await apikeys.revoke(conn, [key["id"] for key in keys])
        for key in keys:
            print(f"revoked {key['prefix']} ({key['name']})")
        return 0

    return asyncio.run(_with_connection(settings, revoke))


def _config(settings: Settings, args: argparse.Namespace) -> int:
    if args.markdown:
        from journeys.settings_doc import settings_table

        print(settings_table(), end="")
    else:
        from journeys.redact import render_env

        print(render_env(settings), end="")
    return 0


def _api_client(settings: Settings, args: argparse.Namespace) -> httpx.Client:
    url = (
        args.api_url
        or os.environ.get("JOURNEYS_API_URL")
        or (f"http://{settings.api_host}:{settings.api_port}")
    )
    key = args.api_key or os.environ.get("JOURNEYS_API_KEY")
    if not key:
        key_file = settings.home / "dev-api-key"
        if key_file.exists():
            key = key_file.read_text().strip()
    if not key:
        raise SystemExit("no API key: set JOURNEYS_API_KEY or pass --api-key")
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(text: str, path: str) -> str:
    """Replaces `${NAME}` with the environment variable, so one file serves every environment."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SystemExit(f"{path}: ${{{name}}} is not set in the environment")
        return os.environ[name]

    return _VAR.sub(value, text)


def _read_flow(path: str, audience: str | None = None) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        data = flowfile.load(_expand(text, path))
    except yaml.YAMLError as exc:
        raise SystemExit(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SystemExit(
            f"{path}: a flow file holds one mapping (name, audience_id, triggers, steps)"
        )
    if audience:
        data["audience_id"] = audience
    return data


def _print_problem(response: httpx.Response) -> None:
    try:
        problem = response.json()
    except ValueError:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return
    print(f"error {response.status_code}: {problem.get('detail')}", file=sys.stderr)
    for err in problem.get("errors", []):
        print(f"  {err['field']}: {err['message']}", file=sys.stderr)


def _flow_apply(settings: Settings, args: argparse.Namespace) -> int:
    """Creates the flow, or updates the live flow of the same name in the audience."""
    definition = _read_flow(args.file, args.audience)
    with _api_client(settings, args) as client:
        existing = None
        if isinstance(definition.get("audience_id"), str) and isinstance(
            definition.get("name"), str
        ):
            listed = client.get(
                "/v1/flows", params={"audience_id": definition["audience_id"], "limit": 1000}
            )
            if listed.status_code == 200:
                existing = next(
                    (
                        f
                        for f in listed.json()["flows"]
                        if f["name"].lower() == definition["name"].lower()
                        and f["status"] != "archived"
                    ),
                    None,
                )
        if existing:
            response = client.put(f"/v1/flows/{existing['id']}", json=definition)
        else:
            response = client.post("/v1/flows", json=definition)
        if response.status_code >= 400:
            _print_problem(response)
            return 1
        flow = response.json()
        if args.activate and flow["status"] != "active":
            response = client.post(f"/v1/flows/{flow['id']}/activate")
            if response.status_code >= 400:
                _print_problem(response)
                return 1
        print(flow["id"], flush=True)
        if args.activate and not args.no_wait:
            return _wait_for_arming(client, flow["id"])
    return 0


def _wait_for_arming(client: httpx.Client, flow_id: str) -> int:
    from journeys import arming_progress

    return arming_progress.wait(client, flow_id, sys.stderr, on_error=_print_problem)


def _flow_activate(settings: Settings, args: argparse.Namespace) -> int:
    """Activates (or resumes) a flow by name or id; waits for its audience to be armed."""
    with _api_client(settings, args) as client:
        flow_id = _flow_id(client, args.flow, args.audience)
        if flow_id is None:
            return 1
        response = client.post(f"/v1/flows/{flow_id}/activate")
        if response.status_code >= 400:
            _print_problem(response)
            return 1
        print(flow_id, flush=True)
        return 0 if args.no_wait else _wait_for_arming(client, flow_id)


def _flow_validate(settings: Settings, args: argparse.Namespace) -> int:
    """Prints every violation with its path; exits 1 if there is any."""
    definition = _read_flow(args.file, args.audience)
    with _api_client(settings, args) as client:
        response = client.post("/v1/flows/validate", json=definition)
    if response.status_code >= 400:
        _print_problem(response)
        return 2
    report = response.json()
    for violation in report["violations"]:
        blocks = " (blocks activation)" if violation.get("blocks") == "activation" else ""
        print(
            f"{args.file}: {violation['path']}: {violation['message']} [{violation['code']}]{blocks}"
        )
    if report["valid"]:
        print(f"{args.file}: valid")
        return 0
    return 1


def _flow_export(settings: Settings, args: argparse.Namespace) -> int:
    with _api_client(settings, args) as client:
        response = client.get(f"/v1/flows/{args.flow_id}")
    if response.status_code >= 400:
        _print_problem(response)
        return 1
    definition = response.json()["definition"]
    if args.format == "json":
        print(json.dumps(definition, indent=2))
    else:
        print(flowfile.dump(definition), end="")
    return 0


def _contact_where(settings: Settings, args: argparse.Namespace) -> int:
    """Prints every flow the contact is or was in, what it waits for, and links to its runs."""
    found = 0
    with _api_client(settings, args) as client:
        if args.audience:
            audiences = [args.audience]
        else:
            listed = client.get("/v1/audiences", params={"limit": 1000})
            if listed.status_code >= 400:
                _print_problem(listed)
                return 1
            audiences = [a["id"] for a in listed.json()["audiences"]]
        for audience in audiences:
            response = client.get(f"/v1/audiences/{audience}/contacts/{args.email}/journeys")
            if response.status_code == 404:
                continue
            if response.status_code >= 400:
                _print_problem(response)
                return 1
            found += 1
            print(_journeys_text(args.email, audience, response.json()))
    if not found:
        print(f"no contact {args.email!r} in any audience", file=sys.stderr)
        return 1
    return 0


def _journeys_text(email: str, audience: str, body: dict[str, Any]) -> str:
    """The contact's journeys as an operator reads them."""
    lines = [f"{email} (contact {body['contact_id']}, audience {audience}, zone {body['zone']})"]
    if not body["journeys"]:
        lines.append("  in no flow")
    for j in body["journeys"]:
        entry = f"entry {j['entry']}" if j["entry"] is not None else "not entered yet"
        lines.append(f"- {j['flow_name']} (v{j['version']}, {entry}): {j['phase'] or j['status']}")
        if j["waiting_for"]:
            lines.append(f"    {j['waiting_for']}")
        if j["until"]:
            lines.append(f"    until {j['until_local']} {body['zone']} ({j['until']} UTC)")
        ended = f", ended {j['ended_at']}" if j["ended_at"] else ""
        if j["entered_at"]:
            lines.append(f"    entered {j['entered_at']}{ended}")
        for step in j["timeline"]:
            outcome = f": {step['outcome']}" if step["outcome"] else ""
            lines.append(f"    · {step['entered_at']} {step['step_id']} ({step['type']}){outcome}")
        lines.append(f"    {j['link']}")
    return "\n".join(lines)


_SCHEDULE_FLAGS = {"offset_days": "--offset", "time_of_day": "--time"}


def _schedule_inputs(args: argparse.Namespace) -> tuple[DateTrigger, datetime]:
    """The trigger and `now` of `journeys schedule next` (the domain checks `--date`).

    Raises:
        ValueError: a flag's value is unusable; the message names the flag.
    """
    from journeys.domain.firing import DATE_TRIGGER_MODELS
    from journeys.domain.timezones import check_timezone

    model = DATE_TRIGGER_MODELS[args.trigger]
    params: dict[str, Any] = {"offset_days": args.offset, "time_of_day": args.time}
    if "field" in model.model_fields:
        params["field"] = "date"  # the flow names a contact field; here the date is given
    try:
        trigger = model.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = _SCHEDULE_FLAGS.get(str(err["loc"][0]), str(err["loc"][0]))
        raise ValueError(f"{flag}: {err['msg'].removeprefix('Value error, ')}") from exc
    check_timezone(args.tz)  # ValueError names the zone
    if args.now is None:
        return trigger, datetime.now(UTC)
    try:
        now = datetime.fromisoformat(args.now)
    except ValueError:
        raise ValueError(
            f"--now: {args.now!r} is not an ISO instant (e.g. 2027-03-01T12:00:00Z)"
        ) from None
    if now.tzinfo is None:
        raise ValueError(f"--now: {args.now!r} needs a UTC offset or Z (e.g. 2027-03-01T12:00Z)")
    return trigger, now


def _schedule_next(args: argparse.Namespace) -> int:
    """Prints when a date trigger fires; exit 3 (reason on stderr) if it will not, 2 if bad input."""
    from journeys.domain.firing import YEARLY_TRIGGERS, FireAt, next_fire

    try:
        trigger, now = _schedule_inputs(args)
        fire = next_fire(trigger, date_value=args.date, zone=args.tz, now=now)
    except ValueError as exc:
        print(f"journeys schedule next: {exc}", file=sys.stderr)
        return 2
    if not isinstance(fire, FireAt) and fire.code in ("no_date", "invalid_date"):
        forms = "MM-DD or YYYY-MM-DD" if isinstance(trigger, YEARLY_TRIGGERS) else "YYYY-MM-DD"
        print(
            f"journeys schedule next: --date: {args.date!r} is not a date"
            f" ({args.trigger} takes {forms})",
            file=sys.stderr,
        )
        return 2
    if not isinstance(fire, FireAt):
        print(f"will not fire: {fire.message}", file=sys.stderr)
        return 3
    utc = fire.utc.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    local = fire.local.replace(tzinfo=None).isoformat(timespec="minutes")
    if args.json:
        print(json.dumps({"utc": utc, "local": local, "zone": fire.zone}))
        return 0
    print(f"utc    {utc}")
    offset = f"UTC{fire.local.isoformat()[-6:]}"
    abbreviation = fire.local.tzname() or ""
    # Zones without an abbreviation name themselves by their offset (`+0545`): say it once.
    label = offset if abbreviation[:1] in ("+", "-", "") else f"{abbreviation}, {offset}"
    print(f"local  {local} {fire.zone} ({label})")
    for note in fire.notes:
        print(f"note   {note}")
    return 0


_IMPORT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
_IMPORT_BLOCK = 64 * 1024


def _progress(sent: int, total: int, stream: Any) -> None:
    """One line redrawn in place: bar, percentage, megabytes sent."""
    width = 30
    done = sent / total if total else 1.0
    bar = "#" * int(done * width)
    print(
        f"\r[{bar:<{width}}] {done:4.0%}  {sent / 1e6:.1f}/{total / 1e6:.1f} MB",
        end="",
        file=stream,
        flush=True,
    )


def _contacts_import(settings: Settings, args: argparse.Namespace) -> int:
    """Streams a CSV or JSON-lines file to the import endpoint, with a progress bar on stderr."""
    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    kind = args.format or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    total = path.stat().st_size

    def blocks() -> Any:
        sent = 0
        with path.open("rb") as source:
            while block := source.read(_IMPORT_BLOCK):
                sent += len(block)
                _progress(sent, total, sys.stderr)
                yield block
        print(file=sys.stderr)

    with _api_client(settings, args) as http:
        # The server stores rows as they arrive: the answer comes after the last one.
        response = http.post(
            f"/v1/audiences/{args.audience}/contacts:import",
            content=blocks(),
            headers={"Content-Type": _IMPORT_TYPES[kind]},
            timeout=httpx.Timeout(30, read=900),
        )
    if response.status_code != 200:
        _print_problem(response)
        return 1
    report = response.json()
    print(
        f"{report['rows']} rows: {report['created']} created, {report['updated']} updated,"
        f" {report['failed']} failed; {report['enrolled']} flow runs started"
    )
    for err in report["errors"]:
        print(f"  row {err['row']}: {err['field']}: {err['message']}", file=sys.stderr)
    if report["failed"] > len(report["errors"]):
        print(f"  … and {report['failed'] - len(report['errors'])} more", file=sys.stderr)
    return 1 if report["failed"] else 0


def _flow_id(client: httpx.Client, ref: str, audience: str | None) -> str | None:
    """The id of the flow named `ref` (an id, or a name; a name may need --audience)."""
    response = client.get(f"/v1/flows/{ref}")
    if response.status_code == 200:
        return ref
    params: dict[str, Any] = {"limit": 1000}
    if audience:
        params["audience_id"] = audience
    listed = client.get("/v1/flows", params=params)
    if listed.status_code != 200:
        _print_problem(listed)
        return None
    named = [
        f
        for f in listed.json()["flows"]
        if f["name"].casefold() == ref.casefold() and f["status"] != "archived"
    ]
    if len(named) != 1:
        print(
            f"no flow is named {ref!r}"
            if not named
            else f"{ref!r} names several flows: pass --audience or the id",
            file=sys.stderr,
        )
        return None
    return str(named[0]["id"])


def _flow_report(settings: Settings, args: argparse.Namespace) -> int:
    """Prints the flow's per-step report as a table (or its Mermaid diagram, for `graph`)."""
    from journeys.domain.flow_report import FlowReport, table

    with _api_client(settings, args) as client:
        flow_id = _flow_id(client, args.flow, args.audience)
        if flow_id is None:
            return 1
        graph = args.action == "graph"
        response = client.get(
            f"/v1/flows/{flow_id}/report", params={"format": "mermaid" if graph else "json"}
        )
    if response.status_code >= 400:
        _print_problem(response)
        return 1
    print(response.text if graph else table(FlowReport.model_validate(response.json())), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journeys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "dev", help="run the whole stack embedded (Postgres, Temporal, worker, API, mail)"
    )
    sub.add_parser("worker", help="run a worker against the configured Postgres and Temporal")
    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--log-level", help="uvicorn's log level (default: JOURNEYS_LOG_LEVEL)")
    sub.add_parser("migrate", help="apply database migrations")
    config = sub.add_parser("config", help="print the effective configuration, secrets masked")
    config.add_argument(
        "--markdown",
        action="store_true",
        help="print the documented settings table instead (docs/configuration.md)",
    )

    key = sub.add_parser("apikey", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create = key.add_parser("create", help="create a key and print it (only line on stdout)")
    create.add_argument("name")
    key.add_parser("list", help="list keys: prefix, name, dates, status (never the key)")
    revoke = key.add_parser("revoke", help="revoke a key by its prefix (jrn_xxxx) or its name")
    revoke.add_argument("key", metavar="PREFIX_OR_NAME")
    revoke.add_argument("--all", action="store_true", help="revoke every active key of that name")

    flow = sub.add_parser("flow", help="flow files").add_subparsers(dest="action", required=True)
    for name, help_text in (
        (
            "apply",
            "create a flow from a YAML/JSON file, or update the one of that name; prints its id",
        ),
        ("validate", "check a flow file; prints each violation with its path, exits 1 if any"),
        ("export", "print a flow's definition"),
        ("report", "print what a flow did, per step, as a table"),
        ("graph", "print the flow as a Mermaid diagram with its per-step counts"),
        (
            "activate",
            "activate (or resume) a flow by name or id; prints its id and shows the arming of"
            " its audience",
        ),
    ):
        cmd = flow.add_parser(name, help=help_text)
        cmd.add_argument("--api-url")
        cmd.add_argument("--api-key")
        if name in ("apply", "validate"):
            cmd.add_argument(
                "-f", "--file", required=True, help="flow file (${VAR} is expanded), or -"
            )
            cmd.add_argument("--audience", help="audience id, overriding the file's audience_id")
        if name == "apply":
            cmd.add_argument("--activate", action="store_true", help="activate it too")
        if name in ("apply", "activate"):
            cmd.add_argument(
                "--no-wait",
                action="store_true",
                help="return once activated, without waiting for the audience to be armed",
            )
        if name == "export":
            cmd.add_argument("flow_id")
            cmd.add_argument("--format", choices=["yaml", "json"], default="yaml")
        if name in ("report", "graph", "activate"):
            cmd.add_argument("flow", metavar="NAME_OR_ID")
            cmd.add_argument("--audience", help="audience id, when several flows share the name")

    schedule = sub.add_parser("schedule", help="date-trigger schedules (no server needed)")
    next_ = schedule.add_subparsers(dest="action", required=True).add_parser(
        "next", help="when a date trigger fires next: the moment in UTC and local time"
    )
    next_.add_argument(
        "--trigger",
        required=True,
        choices=["birthday", "recurring_date", "specific_date", "signup_date"],
        help="the date trigger (yearly: birthday, recurring_date, signup_date; once: specific_date)",
    )
    next_.add_argument(
        "--date",
        required=True,
        help="MM-DD (or YYYY-MM-DD) for birthday/recurring_date, YYYY-MM-DD for"
        " specific_date/signup_date (the signup day)",
    )
    next_.add_argument("--time", required=True, help="local time of day, HH:MM (24-hour)")
    next_.add_argument("--tz", required=True, help="IANA time zone, e.g. America/New_York")
    next_.add_argument("--offset", type=int, default=0, help="offset_days (default 0)")
    next_.add_argument("--now", help="ISO instant with offset (default: the current time)")
    next_.add_argument(
        "--json", action="store_true", help='one line: {"utc": ..., "local": ..., "zone": ...}'
    )

    contact = sub.add_parser("contact", help="one contact").add_subparsers(
        dest="action", required=True
    )
    where = contact.add_parser(
        "where", help="every flow the contact is or was in, what it waits for, links to its runs"
    )
    where.add_argument("email", metavar="EMAIL")
    where.add_argument("--audience", help="audience id (default: look in every audience)")
    where.add_argument("--api-url")
    where.add_argument("--api-key")

    contacts = sub.add_parser("contacts", help="audience contacts").add_subparsers(
        dest="action", required=True
    )
    load = contacts.add_parser(
        "import",
        help="import a CSV (with a header) or JSON-lines file of contacts, showing progress;"
        " exits 1 if any row failed",
    )
    load.add_argument("file", metavar="FILE")
    load.add_argument("--audience", required=True, help="audience id")
    load.add_argument("--format", choices=sorted(_IMPORT_TYPES), help="default: from the suffix")
    load.add_argument("--api-url")
    load.add_argument("--api-key")
    return parser


_COMMANDS = {
    ("dev", None): _dev,
    ("worker", None): _worker,
    ("api", None): _api,
    ("migrate", None): _migrate,
    ("apikey", "create"): _apikey_create,
    ("apikey", "list"): _apikey_list,
    ("apikey", "revoke"): _apikey_revoke,
    ("config", None): _config,
    ("flow", "apply"): _flow_apply,
    ("flow", "validate"): _flow_validate,
    ("flow", "export"): _flow_export,
    ("contact", "where"): _contact_where,
    ("contacts", "import"): _contacts_import,
    ("flow", "report"): _flow_report,
    ("flow", "graph"): _flow_report,
    ("flow", "activate"): _flow_activate,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `journeys` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "schedule":
        # Pure computation: no settings, so it works where none are configured.
        return _schedule_next(args)
    try:
        settings = Settings()
    except ValidationError as exc:
        # A readable refusal instead of a traceback: this is what an operator sees first.
        print(f"invalid configuration ({exc.error_count()} error(s)):", file=sys.stderr)
        for err in exc.errors():
            loc = "_".join(str(part) for part in err["loc"]).upper()
            where = f"JOURNEYS_{loc}" if loc else "settings"
            print(f"  {where}: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    if args.command in ("dev", "worker", "api", "migrate"):
        _configure_logging(settings)
    handler = _COMMANDS[(args.command, getattr(args, "action", None))]
    return handler(settings, args)


if __name__ == "__main__":
    sys.exit(main())
