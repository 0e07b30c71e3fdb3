"""Bulk contact import: CSV or JSON lines, streamed, checked row by row, stored by chunk.

A bad row is reported with its number and skipped; good rows around it are stored. Rows are
stored a chunk at a time (one transaction, three statements), and their events — a new
subscription marked `imported`, which only flows with `include_imported` take — are delivered
after each chunk commits, through the same ingest as every other change.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from journeys.changes import upsert_events
from journeys.domain.events import IncomingEvent
from journeys.domain.merge_fields import COLUMN, MergeField, to_contact
from journeys.domain.phones import to_e164
from journeys.domain.timezones import check_timezone
from journeys.ingest import Ingest
from journeys.security import subscriber_hash
from journeys.store import contacts, events

MAX_ROWS = 100_000
CHUNK_ROWS = 1_000
# A report lists this many bad rows at most; `failed` still counts them all.
MAX_LISTED_ERRORS = 1_000
# One contact is a few hundred bytes: a longer record is a broken file, not a contact.
MAX_RECORD_CHARS = 64 * 1024

Format = Literal["csv", "jsonl"]
NATIVE_COLUMNS = ("email", *contacts.IMPORT_COLUMNS)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BIRTHDAY = re.compile(r"^(\d{4}-)?(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
# Imports cannot ask for double opt-in: that sends email, one contact at a time, via the API.
_STATUSES = ("subscribed", "unsubscribed", "transactional")
_SMS_STATUSES = ("subscribed", "unsubscribed", "none")
# Consent a list owner cannot restore by uploading a file (as at Mailchimp).
NO_RESUBSCRIBE = ("unsubscribed", "cleaned")


class UnreadableFile(ValueError):
    """The whole file is unusable (unknown columns, no email column, bad encoding)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class RowError:
    row: int
    field: str
    message: str


@dataclass
class ImportReport:
    """What an import did. `row` numbers count data rows from 1 (a CSV header is not a row)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    truncated: bool = False  # reading stopped early: the row limit, or a broken file
    enrolled: int = 0

    def fail(self, row: int, field: str, message: str, *, always: bool = False) -> None:
        """Counts a bad row; lists it while the list is short, or `always` (where reading
        stopped, which the caller must see)."""
        self.failed += 1
        if always or len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(RowError(row, field, message))


async def _lines(body: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Text lines of a UTF-8 byte stream (a BOM is dropped), without line ends."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    rest = ""
    try:
        async for chunk in body:
            rest += decoder.decode(chunk)
            *complete, rest = rest.split("\n")
            for line in complete:
                yield line.removesuffix("\r")
            if len(rest) > MAX_RECORD_CHARS:
                raise UnreadableFile("body", f"a line is longer than {MAX_RECORD_CHARS} characters")
        rest += decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:
        raise UnreadableFile("body", "the file is not UTF-8 text") from err
    if rest:
        yield rest.removesuffix("\r")


async def _csv_records(body: AsyncIterator[bytes]) -> AsyncIterator[list[str]]:
    """CSV records; a quoted value may span lines (a record ends when its quotes balance)."""
    pending: list[str] = []
    async for line in _lines(body):
        pending.append(line)
        text = "\n".join(pending)
        if text.count('"') % 2:
            if len(text) > MAX_RECORD_CHARS:
                raise UnreadableFile(
                    "body",
                    f"a quoted value runs past {MAX_RECORD_CHARS} characters (unclosed quote?)",
                )
            continue
        pending = []
        if text.strip():
            yield next(csv.reader([text]))
    if pending:
        yield next(csv.reader(["\n".join(pending)]))


async def rows(
    body: AsyncIterator[bytes], kind: Format
) -> AsyncIterator[tuple[int, dict[str, Any] | str]]:
    """(row number, values) per data row, or (row number, error message) for an unreadable one.

    Raises:
        UnreadableFile: the CSV header has no `email` column.
    """
    if kind == "jsonl":
        number = 0
        async for line in _lines(body):
            number += 1
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, f"not JSON: {err.msg}"
                continue
            yield number, value if isinstance(value, dict) else "each line must be a JSON object"
        return
    header: list[str] | None = None
    number = 0
    async for record in _csv_records(body):
        if header is None:
            header = [name.strip() for name in record]
            if "email" not in header:
                raise UnreadableFile("header", "the CSV header must have an `email` column")
            continue
        number += 1
        if len(record) != len(header):
            yield number, f"has {len(record)} values, the header has {len(header)} columns"
            continue
        yield number, {name: value for name, value in zip(header, record, strict=True) if value}


def check_row(
    values: dict[str, Any], merge: dict[str, MergeField], *, phone_region: str | None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A row's contact values, converted, and its problems as (field, message)."""
    errors: list[tuple[str, str]] = []
    given: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    for name, raw in values.items():
        if raw is None:
            continue  # JSON null = not given, like an empty CSV cell
        if name in NATIVE_COLUMNS:
            given[name] = raw.strip() if isinstance(raw, str) else raw
        elif name.upper() in merge:
            tags[name] = raw
        else:
            errors.append((name, f"unknown column {name!r}"))
    email = given.get("email")
    if not isinstance(email, str) or not _EMAIL.match(email) or len(email) > 254:
        errors.append(("email", f"{email!r} is not an email address"))
    for name, value in given.items():
        if name != "email" and value is not None and not isinstance(value, str):
            errors.append((name, "must be a string"))
    checks = {
        "status": lambda v: v in _STATUSES or f"must be one of {', '.join(_STATUSES)}",
        "sms_status": lambda v: v in _SMS_STATUSES or f"must be one of {', '.join(_SMS_STATUSES)}",
        "birthday": lambda v: bool(_BIRTHDAY.match(v)) or "must be MM-DD or YYYY-MM-DD",
    }
    for name, check in checks.items():
        value = given.get(name)
        if isinstance(value, str) and (verdict := check(value)) is not True:
            errors.append((name, str(verdict)))
    for name, convert in (
        ("phone", lambda v: to_e164(v, region=phone_region)),
        ("timezone", check_timezone),
    ):
        value = given.get(name)
        if isinstance(value, str):
            try:
                given[name] = convert(value)
            except ValueError as err:
                errors.append((name, str(err)))
    if tags:
        converted, problems = to_contact(tags, merge, creating=False, phone_region=phone_region)
        errors += problems
        fields = converted.pop("fields", {})
        given |= converted
        if fields:
            given["fields"] = fields
    return given, errors


class Importer:
    """Imports one file into one audience.

    Args:
        ingest: Stores the events and delivers them.
        audience_id: The audience.
        merge: The audience's merge fields (columns named by a merge tag are converted).
        phone_region: Country of phone numbers written without their country code.
    """

    def __init__(
        self,
        ingest: Ingest,
        audience_id: str,
        *,
        merge: dict[str, MergeField],
        phone_region: str | None,
    ) -> None:
        self._ingest = ingest
        self._audience_id = audience_id
        self._merge = merge
        self._phone_region = phone_region
        self._key = uuid.uuid4().hex
        self.report = ImportReport()

    async def run(self, body: AsyncIterator[bytes], kind: Format) -> ImportReport:
        """Reads, checks and stores every row; returns the report."""
        chunk: dict[str, tuple[int, dict[str, Any]]] = {}
        try:
            await self._read(body, kind, chunk)
        except UnreadableFile as err:
            if not self.report.rows:
                raise
            # Rows before the break are good: keep them, and say where reading stopped.
            self.report.truncated = True
            self.report.fail(self.report.rows + 1, err.field, str(err), always=True)
        if chunk:
            await self._store(chunk)
        # Consent refusals are found when a chunk is stored, after later rows were read.
        self.report.errors.sort(key=lambda e: e.row)
        return self.report

    async def _read(
        self, body: AsyncIterator[bytes], kind: Format, chunk: dict[str, tuple[int, dict[str, Any]]]
    ) -> None:
        async for number, values in rows(body, kind):
            if number > MAX_ROWS:
                self.report.truncated = True
                self.report.fail(
                    number,
                    "row",
                    f"an import takes at most {MAX_ROWS} rows: this row and the ones after it"
                    " were not imported",
                    always=True,
                )
                break
            self.report.rows += 1
            if isinstance(values, str):
                self.report.fail(number, "row", values)
                continue
            given, errors = check_row(values, self._merge, phone_region=self._phone_region)
            if errors:
                for name, message in errors:
                    self.report.fail(number, name, message)
                continue
            digest = subscriber_hash(given["email"])
            # One statement cannot upsert an address twice: store the chunk, then the repeat
            # updates what the earlier row stored.
            if digest in chunk or len(chunk) >= CHUNK_ROWS:
                await self._store(dict(chunk))
                chunk.clear()
            chunk[digest] = (number, given)

    async def _store(self, chunk: dict[str, tuple[int, dict[str, Any]]]) -> None:
        aid = self._audience_id
        async with self._ingest.pool.acquire() as conn, conn.transaction():
            before = await contacts.existing(conn, aid, list(chunk))
            # Required merge fields bind new contacts only, which this lookup tells apart.
            required = [d.tag for d in self._merge.values() if d.required]
            merged = []
            for digest, (number, given) in list(chunk.items()):
                old = before.get(digest)
                if old and old["status"] in NO_RESUBSCRIBE and given.get("status") == "subscribed":
                    self.report.fail(
                        number,
                        "status",
                        f"this contact is {old['status']}: an import cannot subscribe it again"
                        " (only the contact can, e.g. through a double opt-in)",
                    )
                    del chunk[digest]
                    continue
                missing = [tag for tag in required if old is None and not self._has(given, tag)]
                if missing:
                    for tag in missing:
                        self.report.fail(number, tag, f"{tag} is required")
                    del chunk[digest]
                    continue
                row = {name: given.get(name, old and old[name]) for name in contacts.IMPORT_COLUMNS}
                merged.append({**row, "email": given["email"], "fields": given.get("fields")})
            if not merged:
                return
            stored = await contacts.bulk_upsert(conn, aid, merged)
            rows = []
            for after in stored:
                _, given = chunk[after["subscriber_hash"]]
                self.report.created += after["created"]
                self.report.updated += not after["created"]
                old = before.get(after["subscriber_hash"])
                for type, part, data in upsert_events(old, after, {**given, "imported": True}):
                    rows.append(
                        {
                            "idempotency_key": f"{type}:{after['id']}:{part}import:{self._key}",
                            "audience_id": aid,
                            "contact_id": after["id"],
                            "type": type,
                            "data": data,
                        }
                    )
            recorded = await events.record_many(conn, rows)
        pending = [
            (
                IncomingEvent(
                    type=e["type"],
                    audience_id=aid,
                    contact_id=e["contact_id"],
                    idempotency_key=e["idempotency_key"],
                    data=e["data"],
                ),
                e,
            )
            for e in recorded
        ]
        results = await self._ingest.deliver_many(pending)
        self.report.enrolled += sum(
            1 for r in results for e in r.enrolments if e.outcome == "started"
        )

    @staticmethod
    def _has(given: dict[str, Any], tag: str) -> bool:
        if tag in COLUMN:
            return given.get(COLUMN[tag]) is not None
        return tag in (given.get("fields") or {})
