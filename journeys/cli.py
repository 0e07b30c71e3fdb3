"""The `journeys` command: dev stack, production processes, keys and flow files."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError

from journeys import flowfile
from journeys.config import Settings


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
    print(flow["id"])
    return 0


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
        if name == "export":
            cmd.add_argument("flow_id")
            cmd.add_argument("--format", choices=["yaml", "json"], default="yaml")
        if name in ("report", "graph"):
            cmd.add_argument("flow", metavar="NAME_OR_ID")
            cmd.add_argument("--audience", help="audience id, when several flows share the name")
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
    ("flow", "report"): _flow_report,
    ("flow", "graph"): _flow_report,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `journeys` console script."""
    args = build_parser().parse_args(argv)
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
