"""Counting a crash test: what the SMTP sink received against what the flow had to send."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg


@dataclass
class ChaosReport:
    """The figures of one crash test.

    `missing`: an email the flow had to send that the sink never received and the ledger does
    not record as `uncertain`. `uncertain`: sends interrupted while the server's acceptance was
    unknown, recorded and not sent again (`uncertain_received` of them had reached the sink).
    """

    seed: int
    contacts: int
    expected: int = 0
    random_kills: int = 0
    mid_send_kills: int = 0
    emails: int = 0
    duplicates: int = 0
    missing: int = 0
    uncertain: int = 0
    uncertain_received: int = 0
    complete: bool = False
    elapsed: float = 0.0
    recovery: list[float] = field(default_factory=list)  # kill → its in-flight sends settled
    problems: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return self.random_kills + self.mid_send_kills

    @property
    def ok(self) -> bool:
        return self.complete and not self.problems and self.duplicates == self.missing == 0

    def render(self) -> str:
        """The report `make chaos` prints."""
        recovery = ", ".join(f"{s:.1f}" for s in self.recovery) or "nothing was in flight"
        lines = [
            f"seed       {self.seed}",
            f"contacts   {self.contacts}",
            f"kills      {self.kills} ({self.random_kills} at random moments,"
            f" {self.mid_send_kills} after SMTP acceptance and before the record)",
            f"emails     {self.emails} received by the sink, {self.expected} expected",
            f"duplicates {self.duplicates}",
            f"missing    {self.missing}",
            f"uncertain  {self.uncertain} ({self.uncertain_received} had reached the sink,"
            f" {self.uncertain - self.uncertain_received} had not)",
            f"recovery   s from a kill until the sends it interrupted were settled: {recovery}",
            f"elapsed    {self.elapsed:.0f} s, {'complete' if self.complete else 'INCOMPLETE'}",
        ]
        lines += [f"problem    {p}" for p in self.problems]
        return "\n".join(lines)


def sink_receipts(path: Path) -> Counter[tuple[str, str]]:
    """(recipient, Message-ID) → how many times the sink accepted it (`bench.sink` lines)."""
    receipts: Counter[tuple[str, str]] = Counter()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            _, rcpt, mid = line.split("\t")
            receipts[(rcpt, mid)] += 1
    return receipts


async def count(
    pool: asyncpg.Pool,
    report: ChaosReport,
    *,
    audience_id: str,
    flow_id: str,
    steps: list[str],
    sink: Path,
) -> None:
    """Fills the email figures of `report` from the sink's file and the send ledger."""
    rows = await pool.fetch(
        "SELECT c.email, m.step_id, m.message_id, m.status FROM contacts c"
        " LEFT JOIN messages m ON m.contact_id = c.id AND m.flow_id = $2::uuid"
        " WHERE c.audience_id = $1::uuid",
        audience_id,
        flow_id,
    )
    emails = {row["email"] for row in rows}
    ledger = {(r["email"], r["step_id"]): r for r in rows if r["step_id"] is not None}
    receipts = Counter({k: n for k, n in sink_receipts(sink).items() if k[0] in emails})
    report.expected = len(emails) * len(steps)
    report.emails = sum(receipts.values())
    report.duplicates = sum(n - 1 for n in receipts.values())
    for email in emails:
        for step in steps:
            row = ledger.get((email, step))
            received = row is not None and receipts[(email, row["message_id"])] > 0
            if row is not None and row["status"] == "uncertain":
                report.uncertain += 1
                report.uncertain_received += received
            elif not received:
                report.missing += 1
