"""Whether a contact may enter a flow again, given its last entry."""

from __future__ import annotations

from datetime import datetime, timedelta

# Email statuses that keep a contact out of marketing flows (transactional flows admit them);
# the gateway, `begin_enrollment` and the entry statement in journeys/store/enrollments.py judge by it.
NO_MARKETING = frozenset({"unsubscribed", "cleaned"})


def admits(
    *,
    last_started_at: datetime | None,
    allowed: bool,
    min_interval: timedelta | None,
    now: datetime,
) -> str | None:
    """Checks a new entry against the flow's re-entry settings.

    Args:
        last_started_at: Start of the contact's previous entry; None if it never entered.
        allowed: The flow lets contacts enter more than once.
        min_interval: Least time between two entries, if any.
        now: The decision time.

    Returns:
        None if the entry is admitted, else the reason it is refused.
    """
    if last_started_at is None:
        return None
    if not allowed:
        return "the contact already went through this flow and re-entry is off"
    if min_interval is not None and now - last_started_at < min_interval:
        return f"re-entry is allowed only {min_interval} after the previous entry"
    return None
